"""The files of an evidence bundle, and the one error type of the evidence layer."""

from __future__ import annotations

FORMAT = "pytest-drcheck-evidence/1"
DRILL = "drill.json"
RESULTS = "results.jsonl"
JUNIT = "junit.xml"
REPORT = "report.html"
MANIFEST = "MANIFEST.sha256"
# The Ed25519 signature over MANIFEST.sha256 (so, like it, not listed in it).
SIGNATURE = "MANIFEST.sig"
# Signed sign-off records, one per line, appended by `drcheck signoff`.
APPROVALS = "approvals.jsonl"
OBSERVATIONS = "observations"
# Library log records (paramiko, pytest-drcheck) per host, kept out of the test reports.
LOGS = "logs"


class EvidenceError(Exception):
    """A problem with an evidence directory; the message is one line meant for the user."""
