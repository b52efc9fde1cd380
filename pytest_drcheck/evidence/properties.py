"""The names of pytest-drcheck's JUnit properties, defined once.

A check's case properties (pytest's ``--junitxml`` file), the ``dr.name: value`` lines of the
bundle's JUnit and the records the controller rebuilds from reports under pytest-xdist all
read these names, each from one field of the result record.
"""

from __future__ import annotations

HOST = "dr.host"
CHECK = "dr.check"
SUBJECT = "dr.subject"
OUTCOME = "dr.outcome"
EXPECTED = "dr.expected"
OBSERVED = "dr.observed"
VANTAGE = "dr.vantage"
STARTED_AT = "dr.started_at"
DURATION_MS = "dr.duration_ms"
ATTEMPTS = "dr.attempts"
SOURCE = "dr.source"
CHECK_OUTCOME = "dr.check_outcome"
GREEN_AT = "dr.green_at"
TIME_TO_GREEN_S = "dr.time_to_green_s"
WAIVER = "dr.waiver"
WAIVER_STATUS = "dr.waiver_status"
WAIVER_JUSTIFICATION = "dr.waiver_justification"
WAIVER_APPROVED_BY = "dr.waiver_approved_by"
WAIVER_EXPIRES = "dr.waiver_expires"
# Why the check's host could not be reached (the summary shows it once per host).
UNREACHABLE = "dr.unreachable"

# A check's case properties, in order: (property name, field of the result record).
CASE_FIELDS: tuple[tuple[str, str], ...] = (
    (HOST, "host"), (CHECK, "check"), (SUBJECT, "subject"), (OUTCOME, "outcome"),
    (EXPECTED, "expected"), (OBSERVED, "observed"), (VANTAGE, "vantage"),
    (STARTED_AT, "started_at"), (DURATION_MS, "duration_ms"), (ATTEMPTS, "attempts"),
    (SOURCE, "source"), (CHECK_OUTCOME, "check_outcome"), (GREEN_AT, "green_at"),
    (TIME_TO_GREEN_S, "time_to_green_s"),
)
# The waiver that applied to (or expired for) a check: (property name, field of the waiver).
WAIVER_FIELDS: tuple[tuple[str, str], ...] = (
    (WAIVER, "id"), (WAIVER_STATUS, "status"), (WAIVER_JUSTIFICATION, "justification"),
    (WAIVER_APPROVED_BY, "approved_by"), (WAIVER_EXPIRES, "expires"),
)
