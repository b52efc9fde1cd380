"""End-to-end syslog delivery in the lab, measured two ways for every marker:

- what the check reports: from the moment the marker left the instance (TCP: written to the
  instance's stream; UDP: logger returned) to the end of the collector search that found it
  (an upper bound: it includes the search's own SSH round trip);
- what the collector saw: rsyslog's receive timestamp (%timegenerated) minus the message's own
  timestamp, set by the sender as it sent (%timereported: the check's for TCP, logger's for
  UDP). Every lab host shares the machine's clock, so this difference is the real transit and
  processing time.

Needs the lab: `drcheck lab up` (root). Usage: python benchmarks/log_delivery.py [rounds]
"""

from __future__ import annotations

import statistics
import sys
from datetime import datetime
from pathlib import Path

from pytest_drcheck.engine import EngineSettings
from pytest_drcheck.inventory import load_plan
from pytest_drcheck.runtime import DrillRun

REPO = Path(__file__).resolve().parent.parent


def one_round() -> list[tuple[str, float, float, int]]:
    """(via, reported seconds, received - sent seconds, searches) per logging item."""
    plan = load_plan(REPO / "inventories" / "lab.yaml")
    items = [i for i in plan.items if i.check == "logging"]
    run = DrillRun(plan, EngineSettings())
    rows = []
    try:
        run.engine.select(items)
        run.engine.start()
        for item in items:
            result = run.engine.result(item)
            if result.outcome.value != "passed":
                raise SystemExit(f"not delivered: {result.message}")
            details = result.details
            received_text, reported_text = str(details["line"]).split()[:2]
            received = datetime.fromisoformat(received_text)
            sent = datetime.fromisoformat(reported_text)
            rows.append((item.params["via"], float(details["delivery_seconds"]),
                         (received - sent).total_seconds(), int(details["searches"])))
    finally:
        run.close()
    return rows


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 10
    rows = [row for _ in range(rounds) for row in one_round()]
    print(f"lab log delivery: {rounds} rounds x {len(rows) // rounds} markers")
    for via in sorted({r[0] for r in rows}):
        mine = [r for r in rows if r[0] == via]
        reported = sorted(r[1] * 1000 for r in mine)
        transit = sorted(r[2] * 1000 for r in mine)
        print(f"  {via}: check reports median {statistics.median(reported):6.1f} ms "
              f"(max {reported[-1]:6.1f}); collector received after median "
              f"{statistics.median(transit):5.1f} ms (max {transit[-1]:5.1f}); searches "
              f"median {statistics.median(r[3] for r in mine):.0f}")


if __name__ == "__main__":
    main()
