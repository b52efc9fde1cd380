"""AWS support (the ``pytest-drcheck[aws]`` extra): find a drill's recovery instances through
Elastic Disaster Recovery and EC2, refuse non-drill instances, check the AWS side of the drill,
resolve ``aws-secretsmanager:``/``aws-ssm:`` secrets, and reach instances through SSM.

Only ``clients`` imports boto3, and only when a client is first needed: every other module here
imports without the extra installed, so the inventory schema and ``drcheck validate`` work (and
can say ``install pytest-drcheck[aws]``) on a machine without boto3.
"""
