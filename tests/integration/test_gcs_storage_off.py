"""Without GCS fault tolerance (ray_gcs_storage=none) a head restart
loses every Serve application, and site.yml deploys the recorded ones again.

Runs against the live cluster of the default inventory (scripts/test.sh's
`cluster` stage, with echo-cpu deployed): it turns fault tolerance off;
test_gcs_redis.py then moves the cluster to Redis and back to RocksDB.
"""
from __future__ import annotations

import subprocess

import pytest

from helpers import ok, run_playbook, serve_state, wait_for

pytestmark = pytest.mark.usefixtures("live_cluster")

OFF = ("-e", "ray_gcs_storage=none")


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

