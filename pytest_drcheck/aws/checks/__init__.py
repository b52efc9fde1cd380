"""The AWS side of a drill as check types (drs_replication, drs_launch, drs_instance_type,
iam_role, route53_resolver): they observe through the AWS APIs from the runner. They import
without boto3 (the registry loads them to build the inventory schema)."""
