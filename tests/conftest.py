import os

# Imported here, before any pytester snapshot of sys.modules: pytester removes modules first
# imported by an in-process run afterwards, and cryptography's Rust extension (under paramiko)
# does not survive being imported a second time in one process.
import pytest_drcheck.targets.ssh  # noqa: F401

pytest_plugins = ["pytester"]

# No test may ever reach a real AWS endpoint or use real credentials: fake credentials and
# region, no config/credentials files, no instance-metadata lookup, and pytest-drcheck refuses
# any AWS client whose endpoint is not on 127.0.0.1 (inherited by pytester subprocesses too).
for _name in ("AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE",
              "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "AWS_CONTAINER_CREDENTIALS_FULL_URI",
              "AWS_ENDPOINT_URL"):
    os.environ.pop(_name, None)
os.environ.update({
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "eu-west-1",
    "AWS_REGION": "eu-west-1",
    "AWS_CONFIG_FILE": "/nonexistent/drcheck-tests-aws-config",
    "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent/drcheck-tests-aws-credentials",
    "AWS_EC2_METADATA_DISABLED": "true",
    "DRCHECK_AWS_LOOPBACK_ONLY": "1",
})
