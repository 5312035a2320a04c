"""No Locust is left running when loadtest.yml ends: interrupted with Ctrl-C
(SIGINT to the whole process group, as a terminal sends it) or SIGTERM; a
second load test is refused while one runs; the next run clears what an
interrupted one left.

Runs the real loadtest.yml against the live cluster of the default inventory
(scripts/test.sh's `cluster` stage deploys echo-cpu on it), as a plain load
(no verdict) so that it starts at once.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import ROOT, assert_failed_before, pgrep, run_playbook

pytestmark = pytest.mark.usefixtures("live_cluster")

RUNS = Path("/opt/ray-cluster/loadtest/runs")
PLAIN_LOAD = ("-e", "model=echo-cpu", "-e", "ray_loadtest_assert=false", "-e", "ray_loadtest_run_time=120",
              "-e", "ray_loadtest_users=2")


def load_processes() -> list[str]:
    """Command lines of the driver and Locust processes of any run."""
    return pgrep(str(RUNS))


def locust_running() -> bool:
    return any("--headless" in line for line in load_processes())


def start_loadtest(tmp_path: Path) -> subprocess.Popen:
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    log = open(tmp_path / "loadtest.log", "w")
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), "loadtest.yml", *PLAIN_LOAD]
    # Its own process group, so that a test can send Ctrl-C's SIGINT to all of it.
    return subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)


def wait_for_locust(proc: subprocess.Popen, tmp_path: Path, timeout: float = 240) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if locust_running():
            time.sleep(3)  # let the play reach its polling loop
            return
        assert proc.poll() is None, (tmp_path / "loadtest.log").read_text()[-3000:]
        time.sleep(1)
    proc.kill()
    pytest.fail("Locust never started:\n" + (tmp_path / "loadtest.log").read_text()[-3000:])


def interrupt(proc: subprocess.Popen, tmp_path: Path, sig: int, group: bool) -> tuple[int, str, float]:
    """Send sig; return the exit code, the output and the seconds until ansible-playbook exited."""
    t0 = time.monotonic()
    if group:
        os.killpg(proc.pid, sig)
    else:
        proc.send_signal(sig)
    rc = proc.wait(timeout=120)
    return rc, (tmp_path / "loadtest.log").read_text(), time.monotonic() - t0


def assert_stopped(code: int, out: str, took: float, rc: int) -> None:
    # Checked the moment ansible-playbook is gone, not after the driver's heartbeat timeout.
    assert load_processes() == [], f"still running after the playbook ended:\n{load_processes()}\n{out[-3000:]}"
    assert code == rc, out[-3000:]
    assert "Interrupted: stopping the load test on localhost" in out, out[-3000:]
    assert "is stopped" in out, out[-3000:]
    assert took < 60, f"ansible-playbook took {took:.1f} s to stop"


def test_second_load_test_is_refused_and_ctrl_c_leaves_no_locust(tmp_path):
    """A second load test is refused while one runs; then Ctrl-C (SIGINT to the
    whole process group, as a terminal sends it) stops the first. One load
    test for both: each start costs the play's preflight and Locust's start."""
    first = start_loadtest(tmp_path)
    try:
        wait_for_locust(first, tmp_path)
        second = run_playbook("loadtest.yml", *PLAIN_LOAD)
        assert_failed_before(second, "Start Locust", r"Another load test is running on localhost \(echo-cpu-",
                             r"loadtest_driver\.py stop --out=/opt/ray-cluster/loadtest/runs/echo-cpu-")
        assert locust_running(), "the refused run stopped the first one"
    finally:
        stopped = interrupt(first, tmp_path, signal.SIGINT, True)
    # ansible-playbook's "User interrupted execution" exit code.
    assert_stopped(*stopped, rc=99)


def test_sigterm_leaves_no_locust(tmp_path):
    """SIGTERM to ansible-playbook alone, as a CI job's timeout sends it."""
    stale = sorted(p.name for p in RUNS.iterdir()) if RUNS.is_dir() else []
    proc = start_loadtest(tmp_path)
    wait_for_locust(proc, tmp_path)
    # The run cleared what earlier (interrupted) runs left behind: here the
    # Ctrl-C'd run of the test before.
    left = [name for name in stale if (RUNS / name).exists()]
    assert not left, f"stale run directories not removed: {left}"
    assert_stopped(*interrupt(proc, tmp_path, signal.SIGTERM, False), rc=143)
