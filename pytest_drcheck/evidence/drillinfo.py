"""Where a drill run came from: CI run identifiers, the operator, the inventory's git commit.

Only a fixed list of CI variables is read (never the whole environment, which holds tokens).
"""

from __future__ import annotations

import getpass
import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

# (system, the variable that says we run under it, the variables that identify the run)
_CI_SYSTEMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("github-actions", "GITHUB_ACTIONS",
     ("GITHUB_SERVER_URL", "GITHUB_REPOSITORY", "GITHUB_WORKFLOW", "GITHUB_RUN_ID",
      "GITHUB_RUN_NUMBER", "GITHUB_RUN_ATTEMPT", "GITHUB_JOB", "GITHUB_SHA", "GITHUB_REF",
      "GITHUB_ACTOR")),
    ("gitlab-ci", "GITLAB_CI",
     ("CI_SERVER_URL", "CI_PROJECT_PATH", "CI_PIPELINE_ID", "CI_PIPELINE_URL", "CI_JOB_ID",
      "CI_JOB_NAME", "CI_JOB_URL", "CI_COMMIT_SHA", "CI_COMMIT_REF_NAME", "GITLAB_USER_LOGIN")),
    ("jenkins", "JENKINS_URL",
     ("JENKINS_URL", "JOB_NAME", "BUILD_NUMBER", "BUILD_ID", "BUILD_TAG", "BUILD_URL",
      "NODE_NAME", "GIT_COMMIT", "BUILD_USER_ID")),
)
_OPERATOR_VARIABLES = ("DRCHECK_OPERATOR", "GITHUB_ACTOR", "GITLAB_USER_LOGIN", "BUILD_USER_ID")


def ci_info(environ: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    env = os.environ if environ is None else environ
    for system, marker, names in _CI_SYSTEMS:
        if not env.get(marker):
            continue
        variables = {name: env[name] for name in names if env.get(name)}
        url = None
        if system == "github-actions" and {"GITHUB_SERVER_URL", "GITHUB_REPOSITORY",
                                           "GITHUB_RUN_ID"} <= set(variables):
            url = (f"{variables['GITHUB_SERVER_URL']}/{variables['GITHUB_REPOSITORY']}"
                   f"/actions/runs/{variables['GITHUB_RUN_ID']}")
        elif system == "gitlab-ci":
            url = variables.get("CI_JOB_URL") or variables.get("CI_PIPELINE_URL")
        elif system == "jenkins":
            url = variables.get("BUILD_URL")
        run_id = (variables.get("GITHUB_RUN_ID") or variables.get("CI_PIPELINE_ID")
                  or variables.get("BUILD_TAG"))
        return {"system": system, "run_id": run_id, "url": url, "variables": variables}
    if env.get("CI"):
        return {"system": "unknown", "run_id": None, "url": None, "variables": {"CI": env["CI"]}}
    return None


def operator(environ: Mapping[str, str] | None = None) -> str:
    env = os.environ if environ is None else environ
    for name in _OPERATOR_VARIABLES:
        if env.get(name):
            return env[name]
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _git(directory: Path, *args: str) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(directory), *args], capture_output=True,
                              text=True, timeout=5, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def inventory_git(path: Path) -> dict[str, Any] | None:
    """The commit of the inventory's repository, and whether the inventory differs from it."""
    directory = path.resolve().parent
    commit = _git(directory, "rev-parse", "HEAD")
    if not commit:
        return None
    status = _git(directory, "status", "--porcelain", "--", path.name)
    remote = _git(directory, "config", "--get", "remote.origin.url")
    return {
        "commit": commit,
        # Modified or untracked: the commit alone does not reproduce the inventory used.
        "inventory_modified": bool(status),
        "remote": _strip_credentials(remote) if remote else None,
    }


def _strip_credentials(url: str) -> str:
    """https://user:token@host/x.git -> https://host/x.git (a remote URL can hold a token)."""
    scheme, sep, rest = url.partition("://")
    if sep and "@" in rest.split("/", 1)[0]:
        return f"{scheme}://{rest.split('@', 1)[1]}"
    return url


def measure_rpo(records: Sequence[Mapping[str, Any]], target_s: float | None
                ) -> dict[str, Any]:
    """drill.json's ``rpo``: each host's measured RPO (its rpo check's figure, the worst of
    them when it has several), the drill's worst, and whether it met the target. Hosts whose
    rpo check could not observe are listed, not guessed."""
    hosts: dict[str, float] = {}
    targets: dict[str, float] = {}
    unmeasured: set[str] = set()
    for record in records:
        if record.get("check") != "rpo":
            continue
        host = str(record.get("host"))
        figure = record.get("rpo") or {}
        if figure.get("measured_s") is None:
            unmeasured.add(host)
            continue
        hosts[host] = max(hosts.get(host, 0.0), float(figure["measured_s"]))
        if figure.get("target_s") is not None:
            targets[host] = float(figure["target_s"])
    worst = max(hosts, key=lambda h: (hosts[h], h)) if hosts else None
    met = (None if not hosts or unmeasured - set(hosts) else
           all(hosts[h] <= targets.get(h, target_s if target_s is not None else float("inf"))
               for h in hosts))
    return {"target_s": target_s,
            "measured_s": hosts[worst] if worst is not None else None,
            "worst_host": worst, "met": met,
            "hosts": [{"host": h, "measured_s": hosts[h], "target_s": targets.get(h, target_s)}
                      for h in sorted(hosts)],
            "unmeasured": sorted(unmeasured - set(hosts))}
