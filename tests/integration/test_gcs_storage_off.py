"""Without GCS fault tolerance (ray_gcs_storage=none) a head restart
loses every Serve application, and site.yml deploys the recorded ones again.

Runs against the live cluster of the default inventory (scripts/test.sh's
`cluster` stage, with echo-cpu deployed): it turns fault tolerance off;
test_gcs_redis.py then moves the cluster to Redis and back to RocksDB.
"""
from __future__ import annotations

import subprocess
import time

from playbook_run import run_playbook
from test_serve_bad_input import live_cluster, serve_state  # noqa: F401 - the same live-cluster guard
from test_vllm_flavour import ok

OFF = ("-e", "ray_gcs_storage=none")


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = serve_state()
            if predicate(last):
                return last
        except Exception as exc:  # noqa: BLE001 - the head is restarting
            last = exc
        time.sleep(2)
    raise AssertionError(f"{what} not seen within {timeout} s; last: {last}")


def test_head_restart_without_fault_tolerance_needs_the_record():
    # The head is recreated without storage: Ray starts empty, and site.yml's
    # restore play deploys the recorded echo-cpu again.
    ok(run_playbook("site.yml", *OFF))
    assert "echo-cpu" in serve_state()

    subprocess.run(["docker", "restart", "ray-head"], check=True, capture_output=True, timeout=120)
    wait_for(lambda apps: apps == {}, 120, "the restarted head without applications")

    # Nothing but site.yml's restore play can bring it back.
    ok(run_playbook("site.yml", *OFF))
    wait_for(lambda apps: "echo-cpu" in apps, 60, "echo-cpu deployed again")

