"""Find each host's recovery instance at session start, every host at once.

A host names its DRS source server (``drs: {source_server_id}``) or its EC2 instance
(``ec2: {instance_id | tags}``). Discovery runs in a thread pool as soon as the engine starts
(never during collection): per host, the source server (DescribeSourceServers), its recovery
instances (DescribeRecoveryInstances), the drill guard's choice, then the EC2 instance and its
addresses (DescribeInstances). Results are futures: a target's connect waits for its host only,
and a host that cannot be found fails its checks with the reason instead of vanishing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from pytest_drcheck.aws.clients import AwsClients, AwsError
from pytest_drcheck.aws.guard import (
    GONE_STATES,
    Candidate,
    DiscoveryError,
    NoInstance,
    Refused,
    choose,
    last_launch_reason,
)
from pytest_drcheck.aws.jobs import failure_reasons, failure_text
from pytest_drcheck.durations import format_duration
from pytest_drcheck.inventory.plan import HostSpec

LIVE_EC2_STATES = ["pending", "running", "stopping", "stopped"]


def _text(value: Any) -> str | None:
    return str(value) if value else None


@dataclass(frozen=True)
class Found:
    """A host's instance as the AWS APIs describe it (raw API data kept for the checks)."""

    host: str
    instance: Mapping[str, Any]
    recovery_instance: Mapping[str, Any] | None
    source_server: Mapping[str, Any] | None

    @property
    def instance_id(self) -> str:
        return str(self.instance["InstanceId"])

    @property
    def state(self) -> str:
        return str(self.instance.get("State", {}).get("Name", "unknown"))

    @property
    def private_ip(self) -> str | None:
        address = self.instance.get("PrivateIpAddress")
        return str(address) if address else None

    @property
    def private_ips(self) -> list[str]:
        found: dict[str, None] = {}
        for eni in sorted(self.instance.get("NetworkInterfaces", []),
                          key=lambda e: e.get("Attachment", {}).get("DeviceIndex", 0)):
            for address in eni.get("PrivateIpAddresses", []):
                found.setdefault(str(address["PrivateIpAddress"]), None)
        if not found and self.private_ip:
            found[self.private_ip] = None
        return list(found)

    @property
    def vpc_id(self) -> str | None:
        return _text(self.instance.get("VpcId"))

    @property
    def instance_type(self) -> str | None:
        return _text(self.instance.get("InstanceType"))

    @property
    def instance_profile_arn(self) -> str | None:
        return _text(self.instance.get("IamInstanceProfile", {}).get("Arn"))

    @property
    def is_drill(self) -> bool:
        return bool(self.recovery_instance and self.recovery_instance.get("isDrill"))

    @property
    def job_id(self) -> str | None:
        return _text((self.recovery_instance or {}).get("jobID"))

    @property
    def source_server_id(self) -> str | None:
        if self.source_server is not None:
            return str(self.source_server["sourceServerID"])
        return _text((self.recovery_instance or {}).get("sourceServerID"))


def _wait(future: Future[Any], host: str, timeout: float) -> Any:
    try:
        return future.result(timeout=timeout)
    except TimeoutError:
        raise DiscoveryError(f"finding {host} through the AWS APIs did not finish within "
                             f"{format_duration(timeout)}") from None


class Discovery:
    def __init__(self, clients: AwsClients, hosts: Mapping[str, HostSpec], job: str | None,
                 allow_non_drill: bool, workers: int = 16) -> None:
        self.clients = clients
        self.hosts = hosts
        self.job = job
        self.allow_non_drill = allow_non_drill
        self._pool = ThreadPoolExecutor(max_workers=max(1, workers),
                                        thread_name_prefix="drcheck-aws")
        self._lock = threading.Lock()
        self._source: dict[str, Future[Mapping[str, Any]]] = {}
        self._found: dict[str, Future[Found]] = {}

    # --- public ----------------------------------------------------------------------------

    def start(self, names: Iterable[str] | None = None) -> None:
        """Discover these hosts (every AWS host when None) concurrently; idempotent."""
        wanted = sorted(self.hosts) if names is None else list(names)
        with self._lock:
            fresh = [n for n in wanted if n not in self._found and self.hosts[n].aws]
            for name in fresh:
                self._source[name] = Future()
                self._found[name] = Future()
        for name in fresh:
            self._pool.submit(self._discover, name)

    def found(self, host: str, timeout: float) -> Found:
        """The host's instance; DiscoveryError with the reason if it cannot be checked."""
        self.start([host])
        with self._lock:
            future = self._found[host]
        try:
            result: Found = _wait(future, host, timeout)
        except NoInstance as exc:
            if exc.pending:  # the launch is under way: the next look asks DRS again
                self.refresh(host, future)
            raise
        return result

    def refresh(self, host: str, seen: Future[Found] | None = None) -> None:
        """Forget the host's finished discovery (the one ``seen``, if given) so that the next
        look discovers it again: an instance still launching or booting (--dr-wait)."""
        with self._lock:
            current = self._found.get(host)
            if current is None or not current.done() or (seen is not None and current
                                                         is not seen):
                return
            del self._found[host]
            self._source.pop(host, None)

    def source_server(self, host: str, timeout: float) -> Mapping[str, Any]:
        """The host's DRS source server (available before, and even without, its instance)."""
        self.start([host])
        result: Mapping[str, Any] = _wait(self._source[host], host, timeout)
        return result

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)

    # --- work ------------------------------------------------------------------------------

    def _discover(self, name: str) -> None:
        source_future, found_future = self._source[name], self._found[name]
        try:
            spec = self.hosts[name].aws
            if "drs" in spec:
                found = self._by_source_server(name, str(spec["drs"]["source_server_id"]),
                                               source_future)
            else:
                found = self._by_ec2(name, spec["ec2"], source_future)
            found_future.set_result(found)
        except (DiscoveryError, AwsError) as exc:
            error = exc if isinstance(exc, DiscoveryError) else DiscoveryError(str(exc))
            for future in (source_future, found_future):
                if not future.done():
                    future.set_exception(error)
        except Exception as exc:  # a bug must not leave a host waiting forever
            for future in (source_future, found_future):
                if not future.done():
                    future.set_exception(DiscoveryError(
                        f"internal error while finding {name}: {type(exc).__name__}: {exc}"))

    def _describe_source_server(self, source_server_id: str) -> Mapping[str, Any]:
        # Paginated: an endpoint may page before it filters (an empty first page with a
        # nextToken), so a single request could miss the server.
        for server in self.clients.pages("drs", "describe_source_servers", "items",
                                         filters={"sourceServerIDs": [source_server_id]}):
            if server.get("sourceServerID") == source_server_id:
                return server
        raise DiscoveryError(
            f"source server {source_server_id} not found in Elastic Disaster Recovery "
            f"({self.clients.settings.region}); check drs.source_server_id and aws.region")

    def _failed_launch(self, server: Mapping[str, Any]) -> NoInstance | None:
        """Why there is no instance, when the server's last drill launch failed."""
        last = server.get("lifeCycle", {}).get("lastLaunch", {})
        initiated = last.get("initiated", {})
        job = initiated.get("jobID")
        if (last.get("status") != "FAILED" or initiated.get("type") != "DRILL" or not job
                or (self.job and job != self.job)):
            return None
        source_id = str(server["sourceServerID"])
        why = failure_text(failure_reasons(self.clients, str(job), source_id))
        return NoInstance(f"the drill launch of source server {source_id} in job {job} "
                          f"failed: {why}; no recovery instance to check")

    def _pending_launch(self, server: Mapping[str, Any]) -> NoInstance | None:
        last = server.get("lifeCycle", {}).get("lastLaunch", {})
        initiated = last.get("initiated", {})
        job = initiated.get("jobID")
        if last.get("status") not in ("PENDING", "IN_PROGRESS") or (self.job and job != self.job):
            return None
        kind = str(initiated.get("type", "launch")).lower()
        return NoInstance(f"the {kind} launch of source server {server['sourceServerID']} in "
                          f"job {job} is {str(last['status']).lower().replace('_', ' ')}: no "
                          "recovery instance yet", pending=True)

    def _by_source_server(self, name: str, source_server_id: str,
                          source_future: Future[Mapping[str, Any]]) -> Found:
        server = self._describe_source_server(source_server_id)
        recovery = list(self.clients.pages(
            "drs", "describe_recovery_instances", "items",
            filters={"sourceServerIDs": [source_server_id]}))
        candidates = [Candidate(str(r.get("ec2InstanceID") or r["recoveryInstanceID"]), r)
                      for r in recovery if r.get("ec2InstanceState") not in GONE_STATES]
        try:
            if not candidates:
                failed = self._failed_launch(server) or self._pending_launch(server)
                if failed is not None:
                    raise failed
            chosen = choose(f"source server {source_server_id}", candidates, self.job,
                            self.allow_non_drill, last_launch_reason(server))
        except Refused:
            raise  # the source server's own checks report the refusal too
        except DiscoveryError:
            source_future.set_result(server)  # no instance, but the server is the host's
            raise
        source_future.set_result(server)
        instance = self._instances(InstanceIds=[chosen.instance_id])
        if not instance:
            raise DiscoveryError(f"recovery instance {chosen.instance_id} of source server "
                                 f"{source_server_id} is not in EC2 "
                                 f"({self.clients.settings.region})")
        return Found(name, instance[0], chosen.recovery_instance, server)

    def _by_ec2(self, name: str, spec: Mapping[str, Any],
                source_future: Future[Mapping[str, Any]]) -> Found:
        if "instance_id" in spec:
            what = f"instance {spec['instance_id']}"
            params: dict[str, Any] = {"InstanceIds": [str(spec["instance_id"])]}
        else:
            tags = dict(spec["tags"])
            what = "tags " + ", ".join(f"{k}={v}" for k, v in sorted(tags.items()))
            params = {"Filters": [{"Name": f"tag:{k}", "Values": [str(v)]}
                                  for k, v in sorted(tags.items())]}
        params.setdefault("Filters", []).append(
            {"Name": "instance-state-name", "Values": LIVE_EC2_STATES})
        instances = {str(i["InstanceId"]): i for i in self._instances(**params)}
        recovery: dict[str, Mapping[str, Any]] = {}
        if instances:
            for item in self.clients.pages(
                    "drs", "describe_recovery_instances", "items",
                    filters={"recoveryInstanceIDs": sorted(instances)[:200]}):
                recovery[str(item.get("ec2InstanceID") or item["recoveryInstanceID"])] = item
        candidates = [Candidate(i, recovery.get(i)) for i in sorted(instances)]
        if not candidates:
            raise DiscoveryError(f"no live EC2 instance with {what} in "
                                 f"{self.clients.settings.region}; check ec2: and aws.region")
        chosen = choose(what, candidates, self.job, self.allow_non_drill)
        server = None
        if chosen.recovery_instance is not None:
            server = self._describe_source_server(
                str(chosen.recovery_instance["sourceServerID"]))
            source_future.set_result(server)
        else:
            source_future.set_exception(DiscoveryError(
                f"{chosen.instance_id} is not a DRS recovery instance: it has no source server"))
        return Found(name, instances[chosen.instance_id], chosen.recovery_instance, server)

    def _instances(self, **params: Any) -> list[Mapping[str, Any]]:
        return [instance
                for reservation in self.clients.pages("ec2", "describe_instances",
                                                      "Reservations", **params)
                for instance in reservation.get("Instances", [])]
