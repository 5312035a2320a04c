"""Every test's duration goes to $RAY_COMPOSE_TIMINGS when scripts/test.sh sets it (the slowest-tasks list)."""
from __future__ import annotations

import os


def pytest_runtest_logreport(report):
    path = os.environ.get("RAY_COMPOSE_TIMINGS")
    if not path or report.duration < 0.1:
        return
    name = report.nodeid if report.when == "call" else f"{report.nodeid} ({report.when})"
    with open(path, "a", encoding="utf-8") as out:
        out.write(f"{report.duration:.1f}\t{os.environ.get('RAY_COMPOSE_STAGE', '-')}\ttest\t{name}\n")
