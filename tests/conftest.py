# Imported here, before any pytester snapshot of sys.modules: pytester removes modules first
# imported by an in-process run afterwards, and cryptography's Rust extension (under paramiko)
# does not survive being imported a second time in one process.
import pytest_drcheck.targets.ssh  # noqa: F401

pytest_plugins = ["pytester"]
