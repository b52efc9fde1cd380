"""Local AWS endpoints on 127.0.0.1 for what moto lacks, in front of a moto server.

One HTTP endpoint (every client's endpoint_url in the tests) that answers:
- Elastic Disaster Recovery (REST-JSON; no moto release implements it): source servers,
  recovery instances, jobs, job logs, launch configurations from in-memory state the test sets.
  Every request and response is validated against botocore's DRS service model (as botocore's
  Stubber does), so a shape our code sends or expects that AWS would not is a test failure.
- Systems Manager Run Command as an agent would (JSON 1.1): DescribeInstanceInformation (not in
  moto), SendCommand/GetCommandInvocation/CancelCommand that really run the script with sh on
  this machine, with Run Command's status sequence and its 24,000-character output limit;
  or, in "moto" mode, only the two calls moto lacks, the rest forwarded to moto.
- IAM SimulatePrincipalPolicy (query/XML; not in moto): a small evaluator (explicit deny >
  allow > implicit deny, wildcards) over the role's policies as stored in moto.
- An instance metadata service with IMDSv2 tokens under /latest/.
Everything else is forwarded to moto unchanged.
"""

from __future__ import annotations

import fnmatch
import http.client
import json
import subprocess
import threading
import time
import uuid
from collections.abc import Mapping
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse
from xml.sax.saxutils import escape

import boto3
import botocore.session
from botocore.validate import ParamValidator

_MODELS = botocore.session.get_session()
DRS_MODEL = _MODELS.get_service_model("drs")
SSM_MODEL = _MODELS.get_service_model("ssm")
STDOUT_LIMIT, STDERR_LIMIT = 24000, 8000
PLUGINS = {"AWS-RunShellScript": "aws:runShellScript",
           "AWS-RunPowerShellScript": "aws:runPowerShellScript"}


def _powershell(script: str, answers: Mapping[str, Any]) -> subprocess.CompletedProcess[str]:
    """What a Windows agent's PowerShell would print for the batch script (the stand-in)."""
    from tests.targets import fake_windows

    if script.startswith(fake_windows.PREFIX):  # a command line (the clock sample)
        status, out = fake_windows.run_command_line(script, answers.get)
        return subprocess.CompletedProcess(["powershell"], status, out, "")
    return subprocess.CompletedProcess(["powershell"], 0,
                                       fake_windows.run_script(script, answers.get), "")


class ShapeError(AssertionError):
    pass


def validate(params: Any, shape: Any, what: str) -> None:
    report = ParamValidator().validate(params, shape)
    if report.has_errors():
        raise ShapeError(f"{what} does not match the service model:\n{report.generate_report()}")


class FakeAws:
    def __init__(self, moto_url: str) -> None:
        self.moto_url = moto_url
        self.latency = 0.0
        self.page_size = 100
        self.calls: list[tuple[str, str]] = []
        self.errors: list[str] = []
        self.ssm_mode = "agent"  # or "moto"
        self.lock = threading.Lock()
        self.in_flight = 0  # requests in the endpoint now (not reset: a late one still counts)
        self.reset()
        handler = type("Handler", (_Handler,), {"fake": self})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def reset(self) -> None:
        self.source_servers: dict[str, dict[str, Any]] = {}
        self.recovery_instances: dict[str, dict[str, Any]] = {}
        self.jobs: dict[str, dict[str, Any]] = {}
        self.job_logs: dict[str, list[dict[str, Any]]] = {}
        self.launch_configurations: dict[str, dict[str, Any]] = {}
        # GetReplicationConfiguration answers, by source server id.
        self.replication_configurations: dict[str, dict[str, Any]] = {}
        # SSM agent: instance id -> {"PingStatus": ..., "PlatformType": ..., "behaviour": ...}
        self.ssm_instances: dict[str, dict[str, Any]] = {}
        self.ssm_commands: dict[str, dict[str, Any]] = {}
        # A Windows instance's recorded answers, command -> Answer (AWS-RunPowerShellScript
        # runs its batch through tests/targets/fake_windows, there being no PowerShell here).
        self.windows_answers: dict[str, Any] = {}
        self.ssm_missing_polls = 0  # GetCommandInvocation answers InvocationDoesNotExist N times
        self.imds: dict[str, Any] | None = None
        self.imds_tokens: set[str] = set()
        self.calls = []
        self.errors = []
        self.latency = 0.0
        self.page_size = 100
        self.ssm_mode = "agent"
        # The most requests in the endpoint at once (concurrency, shown without clocks).
        self.max_in_flight = 0
        # DRS lists page over everything, then filter each page (an empty first page with a
        # nextToken is legal): only clients that follow nextToken find what they asked for.
        self.page_before_filter = False
        # Seconds between bytes of every DRS answer (0: all at once): a trickling endpoint.
        self.trickle = 0.0
        # Called with (service, operation) before each DRS answer: tests change state here.
        self.on_drs_call: Any = None
        # The drill lifecycle: recovery snapshots per source server, how long a launch takes,
        # source servers whose launch fails (with the job log's rawError), what was terminated.
        self.snapshots: dict[str, list[dict[str, Any]]] = {}
        self.launch_delay = 0.3
        # When set, launches also wait for it (a test decides when they end, whatever the load).
        self.launch_gate: threading.Event | None = None
        self.launch_fail: dict[str, str] = {}
        self.terminated: list[str] = []
        self._launchers: list[threading.Thread] = []
        # Recovery plans: ARN -> its server steps [(step name, [source server ids])], run in
        # order, each step one StartRecovery; their executions by ARN ("steps" kept inside).
        self.recovery_plans: dict[str, list[tuple[str, list[str]]]] = {}
        self.plan_executions: dict[str, dict[str, Any]] = {}

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    # --- DRS -------------------------------------------------------------------------------

    def drs(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        model = DRS_MODEL.operation_model(operation)
        validate(body, model.input_shape, f"DRS {operation} request")
        filters = body.get("filters", {})
        if self.on_drs_call is not None:
            self.on_drs_call(operation, body)
        if operation == "DescribeSourceServers":
            ids = filters.get("sourceServerIDs")
            result = self._listing(sorted(self.source_servers.items()),
                                   lambda k, s: not ids or k in ids, body)
        elif operation == "DescribeRecoveryInstances":
            ids, sources = filters.get("recoveryInstanceIDs"), filters.get("sourceServerIDs")
            result = self._listing(sorted(self.recovery_instances.items()), lambda k, r: (
                (not ids or k in ids) and (not sources or r["sourceServerID"] in sources)), body)
        elif operation == "DescribeJobs":
            ids = filters.get("jobIDs")
            result = self._listing(sorted(self.jobs.items()), lambda k, j: not ids or k in ids,
                                   body)
        elif operation == "DescribeJobLogItems":
            if body["jobID"] not in self.jobs:
                return 404, {"message": f"job {body['jobID']} not found",
                             "__type": "ResourceNotFoundException"}
            result = self._page(self.job_logs.get(body["jobID"], []), body)
        elif operation == "StartRecovery":
            return self._start_recovery(body, model)
        elif operation == "StartRecoveryPlanExecution":
            return self._start_plan(body, model)
        elif operation == "GetRecoveryPlanExecution":
            execution = self.plan_executions.get(body["recoveryPlanExecutionArn"])
            if execution is None:
                return 404, {"message": "recovery plan execution not found",
                             "__type": "ResourceNotFoundException"}
            result = {"recoveryPlanExecution": _public(execution)}
        elif operation == "ListRecoveryPlanExecutionSteps":
            execution = self.plan_executions.get(body["recoveryPlanExecutionArn"])
            if execution is None:
                return 404, {"message": "recovery plan execution not found",
                             "__type": "ResourceNotFoundException"}
            page = self._page(execution["steps"], body)
            result = {"recoveryPlanExecutionSteps": page.pop("items"), **page}
        elif operation == "TerminateRecoveryInstances":
            return self._terminate(body, model)
        elif operation == "DescribeRecoverySnapshots":
            result = self._page(self.snapshots.get(body["sourceServerID"], []), body)
        elif operation == "GetReplicationConfiguration":
            config = self.replication_configurations.get(body["sourceServerID"])
            if config is None:
                return 404, {"message": "source server not found",
                             "__type": "ResourceNotFoundException"}
            result = config
        elif operation == "GetLaunchConfiguration":
            config = self.launch_configurations.get(body["sourceServerID"])
            if config is None:
                return 404, {"message": "source server not found",
                             "__type": "ResourceNotFoundException"}
            result = config
        else:
            return 400, {"message": f"fake DRS does not implement {operation}",
                         "__type": "ValidationException"}
        validate(result, model.output_shape, f"DRS {operation} response")
        return 200, result

    # --- DRS drill lifecycle -----------------------------------------------------------------

    def _start_recovery(self, body: dict[str, Any], model: Any) -> tuple[int, dict[str, Any]]:
        for entry in body["sourceServers"]:
            sid = entry["sourceServerID"]
            if sid not in self.source_servers:
                return 404, {"message": f"source server {sid} not found",
                             "__type": "ResourceNotFoundException"}
            snapshot = entry.get("recoverySnapshotID")
            if snapshot and snapshot not in {s["snapshotID"] for s in self.snapshots.get(sid, [])}:
                return 404, {"message": f"snapshot {snapshot} not found",
                             "__type": "ResourceNotFoundException"}
        drill = bool(body.get("isDrill"))
        job_id = "drsjob-" + uuid.uuid4().hex[:17]
        now = datetime.now(timezone.utc).isoformat()
        job: dict[str, Any] = {
            "jobID": job_id, "arn": f"arn:aws:drs:eu-west-1:123456789012:job/{job_id}",
            "type": "LAUNCH", "initiatedBy": "START_DRILL" if drill else "START_RECOVERY",
            "creationDateTime": now, "status": "PENDING", "tags": dict(body.get("tags", {})),
            "participatingServers": [{"sourceServerID": e["sourceServerID"],
                                      "launchStatus": "PENDING"}
                                     for e in body["sourceServers"]]}
        self.jobs[job_id] = job
        for entry in body["sourceServers"]:
            self.source_servers[entry["sourceServerID"]]["lifeCycle"]["lastLaunch"] = {
                "initiated": {"jobID": job_id, "type": "DRILL" if drill else "RECOVERY",
                              "apiCallDateTime": now},
                "status": "PENDING"}
        launcher = threading.Thread(target=self._launch, args=(job, drill), daemon=True)
        self._launchers.append(launcher)
        launcher.start()
        result = {"job": job}
        validate(result, model.output_shape, "DRS StartRecovery response")
        return 200, result

    def _launch(self, job: dict[str, Any], drill: bool) -> None:
        time.sleep(self.launch_delay)
        if self.launch_gate is not None:
            self.launch_gate.wait(60)
        job["status"] = "STARTED"
        ec2 = boto3.client("ec2", endpoint_url=self.moto_url, region_name="eu-west-1")
        for entry in job["participatingServers"]:
            sid = entry["sourceServerID"]
            server = self.source_servers[sid]
            if sid in self.launch_fail:
                entry["launchStatus"] = "FAILED"
                server["lifeCycle"]["lastLaunch"]["status"] = "FAILED"
                self.job_logs.setdefault(job["jobID"], []).append(
                    {"event": "LAUNCH_FAILED", "logDateTime": job["creationDateTime"],
                     "eventData": {"sourceServerID": sid, "rawError": self.launch_fail[sid]}})
                continue
            name = server["sourceProperties"]["identificationHints"]["hostname"]
            instance_id = ec2.run_instances(
                ImageId="ami-12c6146b", MinCount=1, MaxCount=1, InstanceType="m5.large",
                TagSpecifications=[{"ResourceType": "instance", "Tags": [
                    {"Key": "Name", "Value": name}]}])["Instances"][0]["InstanceId"]
            self.recovery_instances[instance_id] = {
                "recoveryInstanceID": instance_id, "ec2InstanceID": instance_id,
                "ec2InstanceState": "RUNNING", "jobID": job["jobID"], "sourceServerID": sid,
                "isDrill": drill,
                "arn": f"arn:aws:drs:eu-west-1:123456789012:recovery-instance/{instance_id}",
                "pointInTimeSnapshotDateTime": job["creationDateTime"],
                "recoveryInstanceProperties": {"identificationHints": {"hostname": name}}}
            entry.update(launchStatus="LAUNCHED", recoveryInstanceID=instance_id)
            server["lifeCycle"]["lastLaunch"]["status"] = "LAUNCHED"
        job["status"] = "COMPLETED"

    def _start_plan(self, body: dict[str, Any], model: Any) -> tuple[int, dict[str, Any]]:
        plan_arn = body["recoveryPlanArn"]
        if plan_arn not in self.recovery_plans:
            return 404, {"message": f"recovery plan {plan_arn} not found",
                         "__type": "ResourceNotFoundException"}
        if any(e["recoveryPlanArn"] == plan_arn and e["status"] not in ("COMPLETED", "FAILED",
                                                                         "CANCELLED")
               for e in self.plan_executions.values()):
            return 409, {"message": "the plan has an execution in progress",
                         "__type": "ConflictException"}
        arn = (f"arn:aws:drs:eu-west-1:123456789012:recovery-plan-execution/"
               f"{uuid.uuid4().hex[:17]}")
        steps = [{
            "recoveryPlanExecutionStepArn": f"{arn}/step/{index}", "stepName": name,
            "stepIndex": index, "status": "NOT_STARTED",
            "configuration": {"executionServerStepConfiguration": {"servers": [
                {"serverArn": self.source_servers[sid]["arn"], "impactLevel": "CRITICAL"}
                for sid in sids]}}}
            for index, (name, sids) in enumerate(self.recovery_plans[plan_arn], start=1)]
        execution: dict[str, Any] = {
            "recoveryPlanExecutionArn": arn, "recoveryPlanArn": plan_arn, "mode": body["mode"],
            "status": "CREATED", "startedAt": _zulu(), "tags": dict(body.get("tags", {})),
            "steps": steps}
        self.plan_executions[arn] = execution
        runner = threading.Thread(target=self._run_plan, args=(execution,), daemon=True)
        self._launchers.append(runner)
        runner.start()
        result = {"recoveryPlanExecution": _public(execution)}
        validate(result, model.output_shape, "DRS StartRecoveryPlanExecution response")
        return 201, result

    def _run_plan(self, execution: dict[str, Any]) -> None:
        execution["status"] = "IN_PROGRESS"
        start = DRS_MODEL.operation_model("StartRecovery")
        for step, (_, sids) in zip(execution["steps"], self.recovery_plans[
                execution["recoveryPlanArn"]], strict=True):
            step["status"] = "EXECUTING"
            _, answer = self._start_recovery({"sourceServers": [{"sourceServerID": sid}
                                                                for sid in sids],
                                              "isDrill": execution["mode"] == "DRILL"}, start)
            launcher = self._launchers[-1]
            job = answer["job"]
            for server in step["configuration"]["executionServerStepConfiguration"]["servers"]:
                server["jobID"] = job["jobID"]
            launcher.join(timeout=60)
            if any(e["launchStatus"] == "FAILED" for e in job["participatingServers"]):
                step["status"] = "FAILED"
                step["errorDetail"] = {"code": "LAUNCH_FAILED",
                                       "message": f"job {job['jobID']} failed"}
                execution["status"] = "FAILED"
                execution["errorDetail"] = {"code": "STEP_FAILED",
                                            "message": f"step {step['stepName']} failed"}
                return
            step["status"] = "COMPLETED"
        execution["status"] = "COMPLETED"
        execution["completedAt"] = _zulu()

    def wait_for_launches(self) -> None:
        for launcher in self._launchers:
            launcher.join(timeout=30)

    def _terminate(self, body: dict[str, Any], model: Any) -> tuple[int, dict[str, Any]]:
        ids = body["recoveryInstanceIDs"]
        unknown = [i for i in ids if i not in self.recovery_instances]
        if unknown:
            return 404, {"message": f"recovery instances not found: {unknown}",
                         "__type": "ResourceNotFoundException"}
        ec2 = boto3.client("ec2", endpoint_url=self.moto_url, region_name="eu-west-1")
        ec2.terminate_instances(InstanceIds=[self.recovery_instances[i]["ec2InstanceID"]
                                             for i in ids])
        for instance_id in ids:
            self.recovery_instances[instance_id]["ec2InstanceState"] = "TERMINATED"
            self.terminated.append(instance_id)
        job_id = "drsjob-" + uuid.uuid4().hex[:17]
        job = {"jobID": job_id, "type": "TERMINATE",
               "initiatedBy": "TERMINATE_RECOVERY_INSTANCES", "status": "COMPLETED",
               "participatingServers": [
                   {"sourceServerID": self.recovery_instances[i]["sourceServerID"],
                    "recoveryInstanceID": i, "launchStatus": "TERMINATED"} for i in ids]}
        self.jobs[job_id] = job
        result = {"job": job}
        validate(result, model.output_shape, "DRS TerminateRecoveryInstances response")
        return 200, result

    def _listing(self, entries: list[tuple[str, Any]], wanted: Any,
                 body: Mapping[str, Any]) -> dict[str, Any]:
        if not self.page_before_filter:
            return self._page([v for k, v in entries if wanted(k, v)], body)
        page = self._page(entries, body)
        page["items"] = [v for k, v in page["items"] if wanted(k, v)]
        return page

    def _page(self, items: list[Any], body: Mapping[str, Any]) -> dict[str, Any]:
        start = int(body.get("nextToken") or 0)
        size = min(int(body.get("maxResults") or self.page_size), self.page_size)
        page: dict[str, Any] = {"items": items[start:start + size]}
        if start + size < len(items):
            page["nextToken"] = str(start + size)
        return page

    # --- SSM -------------------------------------------------------------------------------

    def ssm(self, operation: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
        """None: forward to moto."""
        model = SSM_MODEL.operation_model(operation)
        if operation == "DescribeInstanceInformation":
            validate(body, model.input_shape, "SSM DescribeInstanceInformation request")
            wanted = [v for f in body.get("Filters", []) if f["Key"] == "InstanceIds"
                      for v in f["Values"]]
            found = [{"InstanceId": i, "PingStatus": d.get("PingStatus", "Online"),
                      "PlatformType": d.get("PlatformType", "Linux"), "AgentVersion": "3.3.0",
                      "ResourceType": "EC2Instance"}
                     for i, d in sorted(self.ssm_instances.items()) if not wanted or i in wanted]
            return 200, {"InstanceInformationList": found}
        if operation == "CancelCommand":
            command = self.ssm_commands.get(body["CommandId"])
            if command is not None and command["Status"] in ("Pending", "InProgress"):
                command["Status"] = command["StatusDetails"] = "Cancelled"
                command["cancelled"] = True
            return 200, {}
        if self.ssm_mode == "moto":
            return None
        if operation == "SendCommand":
            validate(body, model.input_shape, "SSM SendCommand request")
            return 200, self._send(body)
        if operation == "GetCommandInvocation":
            validate(body, model.input_shape, "SSM GetCommandInvocation request")
            command = self.ssm_commands.get(body["CommandId"])
            if command is None or command["polls_missing"] > 0:
                if command is not None:
                    command["polls_missing"] -= 1
                return 400, {"__type": "InvocationDoesNotExist", "message": ""}
            result = {k: command[k] for k in (
                "CommandId", "InstanceId", "DocumentName", "PluginName", "ResponseCode",
                "Status", "StatusDetails", "StandardOutputContent", "StandardErrorContent")}
            validate(result, model.output_shape, "SSM GetCommandInvocation response")
            return 200, result
        return None

    def _send(self, body: dict[str, Any]) -> dict[str, Any]:
        (instance_id,) = body["InstanceIds"]
        command_id = str(uuid.uuid4())
        script = "\n".join(body["Parameters"]["commands"])
        limit = float(body["Parameters"].get("executionTimeout", ["3600"])[0])
        plugin = PLUGINS[body["DocumentName"]]  # KeyError: a document this fake does not run
        command = {"CommandId": command_id, "InstanceId": instance_id,
                   "DocumentName": body["DocumentName"], "PluginName": plugin,
                   "ResponseCode": -1, "Status": "Pending", "StatusDetails": "Pending",
                   "StandardOutputContent": "", "StandardErrorContent": "",
                   "polls_missing": self.ssm_missing_polls, "cancelled": False,
                   "script": script}
        self.ssm_commands[command_id] = command
        behaviour = self.ssm_instances.get(instance_id, {}).get("behaviour", "run")
        threading.Thread(target=self._agent, args=(command, behaviour, limit,
                                                   self.windows_answers), daemon=True).start()
        return {"Command": {"CommandId": command_id, "DocumentName": body["DocumentName"],
                            "InstanceIds": [instance_id], "Status": "Pending",
                            "RequestedDateTime": time.time(),
                            "Parameters": body["Parameters"]}}

    @staticmethod
    def _agent(command: dict[str, Any], behaviour: str, limit: float,
               windows_answers: Mapping[str, Any]) -> None:
        time.sleep(0.1)  # delivery
        if behaviour == "undeliverable":
            command.update(Status="Failed", StatusDetails="Undeliverable")
            return
        if command["cancelled"]:
            return
        command.update(Status="InProgress", StatusDetails="InProgress")
        if behaviour == "hang":
            return
        try:
            if command["PluginName"] == PLUGINS["AWS-RunPowerShellScript"]:
                done = _powershell(command["script"], windows_answers)
            else:
                done = subprocess.run(["sh", "-c", command["script"]], capture_output=True,
                                      timeout=limit, text=True)
        except subprocess.TimeoutExpired:
            command.update(Status="TimedOut", StatusDetails="ExecutionTimedOut",
                           ResponseCode=-1)
            return
        if command["cancelled"]:
            return
        command.update(
            ResponseCode=done.returncode,
            Status="Success" if done.returncode == 0 else "Failed",
            StatusDetails="Success" if done.returncode == 0 else "Failed",
            StandardOutputContent=done.stdout[:STDOUT_LIMIT],
            StandardErrorContent=done.stderr[:STDERR_LIMIT])

    # --- IAM policy simulation -------------------------------------------------------------

    def simulate(self, form: Mapping[str, list[str]]) -> str:
        role_arn = form["PolicySourceArn"][0]
        actions = [v[0] for k, v in sorted(form.items(), key=lambda kv: _member(kv[0]))
                   if k.startswith("ActionNames.member.")]
        resources = [v[0] for k, v in sorted(form.items(), key=lambda kv: _member(kv[0]))
                     if k.startswith("ResourceArns.member.")] or ["*"]
        statements = self._role_statements(role_arn.rsplit("/", 1)[-1])
        members = []
        for action in actions:
            for resource in resources:
                decision, matched = _decide(statements, action, resource)
                matched_xml = "".join(
                    f"<member><SourcePolicyId>{escape(m)}</SourcePolicyId></member>"
                    for m in matched)
                members.append(
                    f"<member><EvalActionName>{escape(action)}</EvalActionName>"
                    f"<EvalResourceName>{escape(resource)}</EvalResourceName>"
                    f"<EvalDecision>{decision}</EvalDecision>"
                    f"<MatchedStatements>{matched_xml}</MatchedStatements>"
                    "<MissingContextValues/></member>")
        return ('<SimulatePrincipalPolicyResponse xmlns="https://iam.amazonaws.com/doc/'
                '2010-05-08/"><SimulatePrincipalPolicyResult><IsTruncated>false</IsTruncated>'
                f"<EvaluationResults>{''.join(members)}</EvaluationResults>"
                "</SimulatePrincipalPolicyResult><ResponseMetadata><RequestId>"
                f"{uuid.uuid4()}</RequestId></ResponseMetadata>"
                "</SimulatePrincipalPolicyResponse>")

    def _role_statements(self, role: str) -> list[tuple[str, dict[str, Any]]]:
        iam = boto3.client("iam", endpoint_url=self.moto_url, region_name="us-east-1")
        found: list[tuple[str, dict[str, Any]]] = []
        for attached in iam.list_attached_role_policies(RoleName=role)["AttachedPolicies"]:
            policy = iam.get_policy(PolicyArn=attached["PolicyArn"])["Policy"]
            document = iam.get_policy_version(PolicyArn=attached["PolicyArn"], VersionId=policy[
                "DefaultVersionId"])["PolicyVersion"]["Document"]
            found += [(attached["PolicyName"], s) for s in _statements(document)]
        for name in iam.list_role_policies(RoleName=role)["PolicyNames"]:
            document = iam.get_role_policy(RoleName=role, PolicyName=name)["PolicyDocument"]
            found += [(name, s) for s in _statements(document)]
        return found

    # --- IMDS ------------------------------------------------------------------------------

    def metadata(self, method: str, path: str, headers: Mapping[str, str]) -> tuple[int, str]:
        if self.imds is None:
            return 404, "not found"
        if path == "/latest/api/token":
            if method != "PUT" or not headers.get("X-aws-ec2-metadata-token-ttl-seconds"):
                return 400, "bad token request"
            token = uuid.uuid4().hex
            self.imds_tokens.add(token)
            return 200, token
        if headers.get("X-aws-ec2-metadata-token") not in self.imds_tokens:
            return 401, "unauthorized"  # IMDSv2 required
        if path == "/latest/meta-data/instance-type" and self.imds.get("instance_type"):
            return 200, str(self.imds["instance_type"])
        if path == "/latest/meta-data/iam/info" and self.imds.get("profile_arn"):
            return 200, json.dumps({"Code": "Success", "LastUpdated": "2024-01-01T00:00:00Z",
                                    "InstanceProfileArn": self.imds["profile_arn"],
                                    "InstanceProfileId": "AIPAEXAMPLE"})
        if path == "/latest/meta-data/iam/security-credentials/" and self.imds.get("role"):
            return 200, self.imds["role"]
        return 404, "not found"


def _zulu() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _public(execution: Mapping[str, Any]) -> dict[str, Any]:
    """A plan execution as the API returns it (its steps are a listing of their own)."""
    return {k: v for k, v in execution.items() if k != "steps"}


def _member(key: str) -> tuple[str, int]:
    prefix, _, number = key.rpartition(".")
    return (prefix, int(number)) if number.isdigit() else (key, 0)


def _statements(document: Any) -> list[dict[str, Any]]:
    if isinstance(document, str):
        document = json.loads(document)
    statements = document.get("Statement", [])
    return [statements] if isinstance(statements, dict) else list(statements)


def _matches(patterns: Any, value: str) -> bool:
    patterns = [patterns] if isinstance(patterns, str) else list(patterns)
    return any(fnmatch.fnmatchcase(value.lower(), p.lower()) for p in patterns)


def _decide(statements: list[tuple[str, dict[str, Any]]], action: str,
            resource: str) -> tuple[str, list[str]]:
    allowed: list[str] = []
    for source, statement in statements:
        if not (_matches(statement.get("Action", []), action)
                and _matches(statement.get("Resource", "*"), resource)):
            continue
        if statement.get("Effect") == "Deny":
            return "explicitDeny", [source]
        allowed.append(source)
    return ("allowed", allowed) if allowed else ("implicitDeny", [])


class _Handler(BaseHTTPRequestHandler):
    fake: FakeAws
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def _handle(self) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with fake.lock:
            fake.in_flight += 1
            fake.max_in_flight = max(fake.max_in_flight, fake.in_flight)
        try:
            if fake.latency:
                time.sleep(fake.latency)
        finally:
            with fake.lock:
                fake.in_flight -= 1
        path = urlparse(self.path).path
        try:
            if path.startswith("/latest/"):
                status, text = fake.metadata(self.command, path, self.headers)
                return self._send(status, text.encode(), "text/plain")
            service = _service(self.headers.get("Authorization", ""))
            target = self.headers.get("X-Amz-Target", "")
            if service == "drs":
                operation = path.strip("/")
                fake.calls.append(("drs", operation))
                status, answer = fake.drs(operation, json.loads(body or b"{}"))
                if fake.trickle:
                    return self._trickle(status, json.dumps(answer).encode())
                return self._json(status, answer, rest=True)
            if target.startswith("AmazonSSM."):
                operation = target.split(".", 1)[1]
                fake.calls.append(("ssm", operation))
                local = fake.ssm(operation, json.loads(body or b"{}"))
                if local is not None:
                    return self._json(*local)
            if service == "iam":
                form = parse_qs(body.decode())
                if form.get("Action") == ["SimulatePrincipalPolicy"]:
                    fake.calls.append(("iam", "SimulatePrincipalPolicy"))
                    return self._send(200, fake.simulate(form).encode(), "text/xml")
            fake.calls.append((service, target or path))
            self._forward(body)
        except ShapeError as exc:
            fake.errors.append(str(exc))
            self._json(400, {"__type": "ValidationException", "message": str(exc)}, rest=True)

    def _trickle(self, status: int, data: bytes) -> None:
        """Headers at once, then one byte per ``fake.trickle`` seconds (until reset)."""
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.flush()
        for index in range(len(data)):
            delay = self.fake.trickle
            if not delay:
                self.close_connection = True
                return  # reset: give up (the client sees a short read)
            time.sleep(delay)
            try:
                self.wfile.write(data[index:index + 1])
                self.wfile.flush()
            except OSError:
                return

    def _json(self, status: int, answer: Mapping[str, Any], rest: bool = False) -> None:
        headers = {}
        if status >= 400 and rest:
            headers["x-amzn-ErrorType"] = str(answer.get("__type", "Error"))
        self._send(status, json.dumps(answer).encode(),
                   "application/json" if rest else "application/x-amz-json-1.1", headers)

    def _send(self, status: int, data: bytes, content_type: str,
              headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("x-amzn-RequestId", str(uuid.uuid4()))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _forward(self, body: bytes) -> None:
        moto = urlparse(self.fake.moto_url)
        connection = http.client.HTTPConnection(moto.hostname, moto.port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
        headers["Host"] = moto.netloc
        connection.request(self.command, self.path, body=body, headers=headers)
        response = connection.getresponse()
        data = response.read()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection",
                                   "server", "date"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        connection.close()


def _service(authorization: str) -> str:
    """The signing service from a SigV4 Authorization header's credential scope."""
    marker = "Credential="
    if marker not in authorization:
        return ""
    scope = authorization.split(marker, 1)[1].split(",", 1)[0].split("/")
    return scope[3] if len(scope) > 3 else ""
