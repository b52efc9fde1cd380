"""DRS recovery plans as the drill's launcher: ``StartRecoveryPlanExecution`` in ``DRILL`` mode
instead of one ``StartRecovery``.

A plan launches its servers step by step, each server step starting its own DRS job, so an
execution is followed through its steps (``ListRecoveryPlanExecutionSteps``: each server's
``jobID``). What the lifecycle needs from it:

- launch: the same refusal as a plain launch (a drill of the inventory's servers being launched
  or up), then one StartRecoveryPlanExecution;
- the measured RTO starts at the execution's ``startedAt`` (DRS's clock);
- the checks: with one job, exactly that job (as ``--dr-drs-job``); with several, the drill
  guard alone (the refusal above leaves one drill per server);
- terminate: the drill instances of each job the execution started, and nothing else. An
  execution in RECOVERY mode is refused.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pytest_drcheck.aws.clients import AwsClients
from pytest_drcheck.aws.drill import DrillError, Terminated, _instant, refuse_running, terminate

ENDED = {"COMPLETED", "FAILED", "CANCELLED"}


@dataclass(frozen=True)
class PlanExecution:
    arn: str
    plan_arn: str
    mode: str
    status: str
    # DRS's startedAt: where the measured RTO starts.
    started_at: datetime | None
    # "code: message" of a failed execution, else "".
    error: str
    # The DRS jobs its server steps started, in step order (none before a step runs).
    jobs: tuple[str, ...] = ()
    # Step -> why it did not complete ("step 'web' failed: ..."), in step order.
    step_errors: tuple[str, ...] = ()

    @property
    def ended(self) -> bool:
        return self.status in ENDED

    @classmethod
    def from_api(cls, execution: Mapping[str, Any], steps: Iterable[Mapping[str, Any]] = ()
                 ) -> PlanExecution:
        steps = list(steps)
        jobs: dict[str, None] = {}
        for step in sorted(steps, key=lambda s: int(s.get("stepIndex", 0))):
            servers = step.get("configuration", {}).get("executionServerStepConfiguration", {})
            for server in servers.get("servers", []):
                if server.get("jobID"):
                    jobs.setdefault(str(server["jobID"]), None)
        started = execution.get("startedAt")
        return cls(str(execution["recoveryPlanExecutionArn"]),
                   str(execution["recoveryPlanArn"]), str(execution["mode"]),
                   str(execution["status"]), _instant(started) if started else None,
                   _error(execution.get("errorDetail")), tuple(jobs),
                   tuple(f"step '{s.get('stepName')}' {str(s.get('status')).lower()}"
                         f"{': ' + _error(s['errorDetail']) if s.get('errorDetail') else ''}"
                         for s in steps if s.get("status") in ("FAILED", "TIMED_OUT")))


def _error(detail: Mapping[str, Any] | None) -> str:
    return f"{detail.get('code')}: {detail.get('message')}" if detail else ""


def launch_plan(clients: AwsClients, plan_arn: str, source_ids: Iterable[str],
                allow_running: bool = False) -> PlanExecution:
    """StartRecoveryPlanExecution in DRILL mode (latest point in time for every server)."""
    ids = sorted(set(source_ids))
    if not allow_running and ids:
        refuse_running(clients, ids)
    response = clients.call("drs", "start_recovery_plan_execution", recoveryPlanArn=plan_arn,
                            mode="DRILL", clientToken=str(uuid.uuid4()),
                            tags={"drcheck": "drill"})
    return PlanExecution.from_api(response["recoveryPlanExecution"])


def plan_status(clients: AwsClients, execution_arn: str) -> PlanExecution:
    execution = clients.call("drs", "get_recovery_plan_execution",
                             recoveryPlanExecutionArn=execution_arn)["recoveryPlanExecution"]
    steps = clients.pages("drs", "list_recovery_plan_execution_steps",
                          "recoveryPlanExecutionSteps", recoveryPlanExecutionArn=execution_arn)
    return PlanExecution.from_api(execution, steps)


def wait_plan(clients: AwsClients, execution_arn: str, timeout: float,
              sleep: Callable[[float], None] = time.sleep, poll: float = 5.0) -> PlanExecution:
    """The execution once it has ended, or the last look when ``timeout`` is over."""
    deadline = time.monotonic() + timeout
    while True:
        execution = plan_status(clients, execution_arn)
        left = deadline - time.monotonic()
        if execution.ended or left <= 0:
            return execution
        sleep(min(poll, left))


def terminate_plan(clients: AwsClients, execution_arn: str) -> list[Terminated]:
    """Terminate the drill instances of every job this execution started (each job as
    ``drill.terminate`` does: its own drill instances only)."""
    execution = plan_status(clients, execution_arn)
    if execution.mode != "DRILL":
        raise DrillError(f"recovery plan execution {execution_arn} runs in {execution.mode} "
                         "mode, not DRILL: refusing to terminate its instances")
    return [terminate(clients, job) for job in execution.jobs]
