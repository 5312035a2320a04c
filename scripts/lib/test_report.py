"""The end of scripts/test.sh, pass or fail: each stage's time and the five slowest tasks and tests.

    test_report.py RUN_DIR [DEADLINE]

RUN_DIR/stages.tsv has `start STAGE EPOCH` and `end STAGE EPOCH RC` lines;
RUN_DIR/tasks.tsv has `SECONDS STAGE KIND NAME` lines. With DEADLINE (the
guard hit), it names the slowest stages.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path


def stages(run: Path, now: float, guard_hit: bool = False) -> list[tuple[str, float, str]]:
    """(stage, seconds, outcome) in the order the stages started."""
    started: dict[str, float] = {}
    ended: dict[str, tuple[float, str]] = {}
    path = run / "stages.tsv"
    for line in path.read_text().splitlines() if path.exists() else []:
        event, name, at, *rc = line.split("\t")
        if event == "start":
            started[name] = float(at)
        else:
            ended[name] = (float(at), rc[0] if rc else "?")
    out = []
    for name, at in started.items():
        if name in ended:
            end, rc = ended[name]
            outcome = ("passed" if rc == "0" else "stopped by the guard" if guard_hit and rc == "143"
                       else f"FAILED (exit {rc})")
            out.append((name, end - at, outcome))
        else:
            out.append((name, now - at, "did not finish"))
    return out


def slowest(run: Path, count: int = 5) -> list[list[str]]:
    path = run / "tasks.tsv"
    rows = [line.split("\t", 3) for line in path.read_text().splitlines()] if path.exists() else []
    rows = [row for row in rows if len(row) == 4]
    return sorted(rows, key=lambda row: float(row[0]), reverse=True)[:count]


def main(run: Path, deadline: str = "") -> None:
    now = time.time()
    times = stages(run, now, bool(deadline))
    print("stage times:")
    for name, seconds, outcome in times:
        print(f"  {name:<10} {seconds:6.0f} s  {outcome}")
    if times:
        first = min(float(line.split("\t")[2]) for line in (run / "stages.tsv").read_text().splitlines())
        print(f"  {'wall':<10} {now - first:6.0f} s  (from the first stage; lanes run side by side)")
    print("five slowest tasks and tests:")
    for seconds, stage, kind, name in slowest(run):
        print(f"  {float(seconds):6.0f} s  {stage:<10} {kind:<4}  {name}")
    if deadline:
        worst = sorted(times, key=lambda t: t[1], reverse=True)[:3]
        print(f"the guard stopped the run at {deadline} s; slowest stages: "
              + ", ".join(f"{name} {seconds:.0f} s" for name, seconds, _ in worst))


if __name__ == "__main__":
    main(Path(sys.argv[1]), sys.argv[2] if len(sys.argv) > 2 else "")
