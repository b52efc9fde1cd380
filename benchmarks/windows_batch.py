"""One Windows host's PowerShell batch: its size and its cost against the local endpoints.

The batch is the commands a typical Windows host's checks send (time with a named source,
agent service, nic, two dns names: the families' own commands). Measured: the command line
(OpenSSH and WinRS start it through cmd.exe), the script SSM sends, the output, and the wall
time of one batch over each transport: a real sshd whose ForceCommand is the stand-in
PowerShell, pypsrp to the local WS-Management endpoint (HTTPS), and the local SSM endpoint
(AWS-RunPowerShellScript; its agent waits 0.1 s before "delivery" and the target polls from
0.05 s). The stand-in answers from recordings: PowerShell's own start (about 250 ms on a real
host) and the cmdlets' time are not in these figures.

Usage: python benchmarks/windows_batch.py [runs]
"""

from __future__ import annotations

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from moto.server import ThreadedMotoServer  # noqa: E402

import tests.conftest  # noqa: E402,F401  (fake credentials, loopback-only clients)
from pytest_drcheck.aws.clients import AwsClients  # noqa: E402
from pytest_drcheck.aws.inventory import AwsSettings  # noqa: E402
from pytest_drcheck.checks import registry  # noqa: E402
from pytest_drcheck.inventory import load_plan  # noqa: E402
from pytest_drcheck.targets import powershell_batch  # noqa: E402
from pytest_drcheck.targets.ssh import SshSettings, SshTarget  # noqa: E402
from pytest_drcheck.targets.ssm import SsmSettings, SsmTarget  # noqa: E402
from pytest_drcheck.targets.winrm import WinrmSettings, WinrmTarget  # noqa: E402
from tests.aws.conftest import REGION  # noqa: E402
from tests.aws.fakeaws import FakeAws  # noqa: E402
from tests.aws.test_windows_drill import _Lookup, answer_for, write_plain  # noqa: E402
from tests.targets import fake_windows  # noqa: E402
from tests.targets.sshd import start_sshd  # noqa: E402
from tests.targets.wsman_endpoint import WsmanEndpoint  # noqa: E402


def timed(target: Any, commands: list[str], runs: int) -> tuple[float, int]:
    target.run_batch(commands, 10)  # connection set up outside the figure
    times, out = [], 0
    for _ in range(runs):
        started = time.perf_counter()
        results = target.run_batch(commands, 10)
        times.append(time.perf_counter() - started)
        assert all(r.exit_status == 0 for r in results), [r.stderr for r in results]
        out = sum(len(r.stdout) for r in results)
    return statistics.median(times) * 1000, out


def main() -> None:
    runs = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    work = Path(tempfile.mkdtemp(prefix="drcheck-winbench-"))
    plan = load_plan(write_plain(work / "probe.yaml"))
    commands = list(dict.fromkeys(c for item in plan.items
                                  for c in registry.get(item.check).commands(item)))
    token = powershell_batch.new_token()
    script = powershell_batch.batch_script(commands, 10, token)
    line = powershell_batch.command_line(script)
    print(f"one Windows batch: {len(plan.items)} tests, {len(commands)} commands "
          f"({sum(len(c) for c in commands)} characters of PowerShell)")
    print(f"  script (SSM sends it as is)      {len(script):6d} characters")
    print(f"  command line (ssh, WinRS)        {len(line):6d} characters "
          f"(cmd.exe's limit {powershell_batch.COMMAND_LINE_LIMIT}; empty batch "
          f"{len(powershell_batch.command_line(powershell_batch.batch_script([], 10, token)))})")
    table = {c: a for c in commands if (a := answer_for(c)) is not None}
    answers = work / "answers.json"
    fake_windows.save(str(answers), table)
    force = (f"ForceCommand env PYTHONPATH={REPO} {sys.executable} "
             f"{REPO / 'tests/targets/fake_windows.py'} {answers}")
    sshd = start_sshd(work / "sshd", (force,))
    wsman = WsmanEndpoint(work, {})
    wsman.answers = _Lookup()  # type: ignore[assignment]
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    host, port = moto.get_host_and_port()
    fake = FakeAws(f"http://{host}:{port}")
    fake.ssm_instances["i-0aaaabbbbccccdddd"] = {"PingStatus": "Online",
                                                  "PlatformType": "Windows"}
    fake.windows_answers = _Lookup()
    clients = AwsClients(AwsSettings(region=REGION, endpoint_url=fake.url))
    ssh = SshTarget(SshSettings(name="win-ssh", address="127.0.0.1", port=sshd.port,
                                user="root", identity_file=str(sshd.client_key),
                                known_hosts=str(sshd.known_hosts()), connect_timeout=5.0))
    ssh.platform = "windows"
    winrm = WinrmTarget(WinrmSettings(name="win-rm", address="127.0.0.1", user="drcheck",
                                      password=lambda: "s3cret", port=wsman.port, auth="basic",
                                      cert_validation=str(wsman.cert)))
    ssm = SsmTarget(SsmSettings("win-ssm", "i-0aaaabbbbccccdddd",
                                lambda op, **kw: clients.call("ssm", op, **kw), 5.0,
                                poll_initial=0.05, poll_max=0.2, platform="windows"))
    try:
        for name, target in (("ssh (OpenSSH exec)", ssh), ("winrm (pypsrp, HTTPS)", winrm),
                             ("ssm (Run Command)", ssm)):
            median, out = timed(target, commands, runs)
            print(f"  {name:24s} median {median:7.1f} ms over {runs} runs, "
                  f"{out} characters of output")
    finally:
        for target in (ssh, winrm, ssm):
            target.close()
        sshd.stop()
        wsman.close()
        fake.close()
        moto.stop()


if __name__ == "__main__":
    main()
