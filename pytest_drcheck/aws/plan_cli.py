"""``drcheck drill launch --plan ARN`` and ``status``/``terminate --execution ARN``: the drill
lifecycle through a DRS recovery plan (aws.plans), with the same output contract as the plain
launcher (``key=value`` lines on stdout for CI, the status on stderr while waiting)."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from pytest_drcheck.durations import format_duration


def plan_action(action: str, clients: Any, arn: str, sources: dict[str, str],
                wait: float | None, allow_running: bool) -> int:
    from pytest_drcheck.aws.plans import launch_plan, terminate_plan

    if action == "launch":
        execution = launch_plan(clients, arn, sources, allow_running)
        print(f"execution={execution.arn}")
        print(f"launched_at={execution.started_at.isoformat() if execution.started_at else ''}")
        print(f"servers={','.join(sorted(sources))}")
        if wait is None:
            return 0
        return _status(clients, execution.arn, wait, sys.stderr)
    if action == "status":
        return _status(clients, arn, wait)
    done = terminate_plan(clients, arn)
    if not done:
        print(f"execution {arn}: no job started, nothing to terminate")
    for terminated in done:
        if terminated.instances:
            print(f"terminating {len(terminated.instances)} drill instance(s) of job "
                  f"{terminated.job_id}: {', '.join(terminated.instances)} (DRS job "
                  f"{terminated.terminate_job_id or 'unknown'})")
        else:
            print(f"job {terminated.job_id}: no drill instance left to terminate")
        if terminated.already_gone:
            print(f"already terminated: {', '.join(terminated.already_gone)}")
    return 0


def _status(clients: Any, arn: str, wait: float | None, out: TextIO | None = None) -> int:
    from pytest_drcheck.aws.plans import plan_status, wait_plan

    execution = wait_plan(clients, arn, wait) if wait is not None else plan_status(clients, arn)
    out = out or sys.stdout
    print(f"execution {execution.arn}: {execution.status.lower()}"
          f"{', started ' + execution.started_at.isoformat() if execution.started_at else ''}"
          f"{': ' + execution.error if execution.error else ''}", file=out)
    print(f"jobs: {', '.join(execution.jobs) or 'none yet'}", file=out)
    for line in execution.step_errors:
        print(line, file=out)
    if wait is not None and not execution.ended:
        print(f"drcheck drill status: execution {arn} has not ended after "
              f"{format_duration(wait)}", file=sys.stderr)
        return 1
    return 1 if execution.status == "FAILED" else 0
