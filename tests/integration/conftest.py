"""The live-cluster guards. Tests that need the cluster of scripts/test.sh's
`cluster` stage mark their module with `pytest.mark.usefixtures(...)`: with
RAY_COMPOSE_LIVE=1 (CI) a missing cluster fails them, else they are skipped."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from helpers import DASHBOARD, serve_state


@pytest.fixture(scope="module")
def live_cluster():
    """The default inventory's cluster answers on the dashboard."""
    try:
        serve_state()
    except Exception as exc:  # noqa: BLE001 - any failure means no cluster
        if os.environ.get("RAY_COMPOSE_LIVE") == "1":
            pytest.fail(f"the live cluster is not reachable at {DASHBOARD}: {exc}")
        pytest.skip(f"no live cluster at {DASHBOARD} (run scripts/test.sh cluster)")


@pytest.fixture(scope="module")
def vllm_cpu_cluster(live_cluster):
    """The live cluster runs the vllm-cpu image."""
    labels = subprocess.run(["docker", "inspect", "--format", "{{json .Config.Labels}}", "ray-head"],
                            capture_output=True, text=True).stdout
    flavour = (json.loads(labels or "{}") or {}).get("org.ray-compose.flavour")
    if flavour != "vllm-cpu":
        if os.environ.get("RAY_COMPOSE_LIVE_VLLM") == "1":
            pytest.fail(f"the live cluster runs the {flavour!r} image, not vllm-cpu")
        pytest.skip(f"the live cluster runs the {flavour!r} image (scripts/test.sh cluster switches to vllm-cpu)")
