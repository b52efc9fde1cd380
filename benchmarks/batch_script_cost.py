"""Host-side CPU of one batch of commands: the batch script as shipped, the framing it replaced
(a subshell and a base64 per output), and the bare commands as a plain `;` list (the floor: no
timeout, no framing). Run locally under /bin/sh, so the figures are the instance's share of a
drill's CPU without sshd. Interleaved rounds, medians, ratios.

Usage: python benchmarks/batch_script_cost.py [rounds] [commands]
"""

from __future__ import annotations

import resource
import shlex
import statistics
import subprocess
import sys
from collections.abc import Callable

from pytest_drcheck.targets.batch import batch_script, parse_batch_output

TOKEN = "DRCbench000000000"
# A host's usual batch: name lookups (files only: no query leaves this machine), interface
# and route listings, files, a missing tool.
KINDS = ["getent -s files hosts localhost", "ip -o addr show", "ip route show",
         "cat /etc/resolv.conf", "uname -r", "cat /proc/loadavg", "ls /etc",
         "nosuch-drcheck-tool --version"]


def per_output_framing(commands: list[str], timeout: float, token: str) -> str:
    """The framing before this one: each command in a subshell that base64s its own outputs."""
    seconds = max(1, round(timeout))
    lines = [
        'd=$(mktemp -d 2>/dev/null || mktemp -d -t drcheck) || exit 97',
        "trap 'rm -rf \"$d\"' EXIT",
        'if command -v timeout >/dev/null 2>&1; then T="timeout -k 1 ' + str(seconds) + '";'
        ' else T=""; fi',
        "if [ \"$(printf x | base64 -w0 2>/dev/null)\" = eA== ]; then e() { base64 -w0 <\"$1\"; }"
        "; else e() { base64 <\"$1\" | tr -d '\\n'; }; fi",
    ]
    for index, command in enumerate(commands):
        f = f'"$d/{index}'
        lines.append(
            f"( $T sh -c {shlex.quote(command)} >{f}.o\" 2>{f}.e\" </dev/null; r=$?;"
            f' {{ printf "{token} {index} %s " "$r"; [ -s {f}.o" ] && e {f}.o"; printf " ";'
            f' [ -s {f}.e" ] && e {f}.e"; printf "\\n"; }} >{f}.f" ) &'
        )
    lines += ["wait", 'cat "$d"/*.f 2>/dev/null']
    return "\n".join(lines) + "\n"


def plain_list(commands: list[str], timeout: float, token: str) -> str:
    return "; ".join(f"{{ {command}; }} 2>&1" for command in commands) + "\n"


def children_cpu_ms(script: str) -> tuple[float, str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    out = subprocess.run(["sh", "-c", script], capture_output=True, text=True,
                         timeout=60).stdout
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return cpu * 1000, out


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    count = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    commands = [KINDS[i % len(KINDS)] for i in range(count)]
    variants: dict[str, Callable[[list[str], float, str], str]] = {
        "batch as shipped": batch_script,
        "per-output framing (before)": per_output_framing,
        "plain ; list (floor)": plain_list,
    }
    shipped = parse_batch_output(commands, children_cpu_ms(batch_script(commands, 10, TOKEN))[1],
                                 TOKEN)
    assert not any(result.batch_failed for result in shipped), shipped
    cpu: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, script_of in variants.items():
            cpu[name].append(children_cpu_ms(script_of(commands, 10, TOKEN))[0])
    floor = statistics.median(cpu["plain ; list (floor)"])
    print(f"{count} commands, {rounds} interleaved rounds, host-side CPU (user+sys of sh and "
          "its children)")
    print(f"{'variant':<30} {'median ms':>10} {'per command':>12} {'/ floor':>8}")
    for name, values in cpu.items():
        median = statistics.median(values)
        print(f"{name:<30} {median:>10.1f} {median / count:>12.2f} {median / floor:>7.2f}x")
    before = statistics.median(cpu["per-output framing (before)"])
    now = statistics.median(cpu["batch as shipped"])
    print(f"shipped / before: {now / before:.2f}x; framing overhead above the floor: "
          f"{now - floor:.1f} ms now, {before - floor:.1f} ms before")


if __name__ == "__main__":
    main()
