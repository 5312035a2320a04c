"""Without GCS fault tolerance (ray_gcs_storage=none) a head restart
loses every Serve application.

Runs against the live cluster of the default inventory (scripts/test.sh's
`cluster` stage, with echo-cpu deployed): it turns fault tolerance off and
leaves the cluster empty; test_gcs_redis.py then moves it to Redis, where
site.yml's restore play deploys the recorded echo-cpu again into the empty
state (the step a user takes after such a restart), and back to RocksDB.
"""
from __future__ import annotations

import subprocess

import pytest

from helpers import ok, run_playbook, serve_state, wait_for

pytestmark = pytest.mark.usefixtures("live_cluster")

OFF = ("-e", "ray_gcs_storage=none")


def test_head_restart_without_fault_tolerance_loses_the_applications():
    # The head is recreated without storage: Ray starts empty, and site.yml's
    # restore play deploys the recorded echo-cpu again.
    ok(run_playbook("site.yml", *OFF))
    assert "echo-cpu" in serve_state()

    subprocess.run(["docker", "restart", "ray-head"], check=True, capture_output=True, timeout=120)
    # Nothing but site.yml's restore play can bring it back: test_gcs_redis's
    # first test runs it.
    wait_for(lambda apps: apps == {}, 120, "the restarted head without applications")

