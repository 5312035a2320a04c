"""A head that comes back with another IP address is still found: the workers
reach it by its service name, and the application stays.

Runs against the live cluster of the default inventory (scripts/test.sh's
`cluster` stage, echo-cpu deployed, GCS fault tolerance on).
"""
from __future__ import annotations

import time

import pytest

from e2e.faults import RequestLoop, alive_nodes, container_ip, docker, wait_back, worker_proxies

pytestmark = pytest.mark.usefixtures("live_cluster")

SQUATTER = "ray-test-ip-squatter"


def test_head_with_a_new_ip_is_found(tmp_path):
    old_ip = container_ip("ray-head")
    network = docker("inspect", "-f", "{{range $name, $_ := .NetworkSettings.Networks}}{{$name}} {{end}}",
                     "ray-head").split()[0]
    image = docker("inspect", "-f", "{{.Config.Image}}", "ray-head").strip()
    workers = worker_proxies()  # the workers that run a replica, and so a proxy
    assert workers
    loop = RequestLoop(tmp_path / "stop", workers)
    time.sleep(3)
    try:
        docker("stop", "ray-head")
        # A container that takes an address meanwhile, as on a busy host; the
        # head gets another one (Docker does not hand it its old address back).
        docker("run", "-d", "--rm", "--name", SQUATTER, "--network", network, "--entrypoint", "sleep", image, "600")
        start = time.monotonic()
        docker("start", "ray-head")
        new_ip = container_ip("ray-head")
        assert new_ip != old_ip
        back = wait_back(120, since=start)
    finally:
        docker("rm", "-f", SQUATTER, check=False)
    time.sleep(2)
    counts = loop.stop()
    print(f"head back with a new IP ({old_ip} -> {new_ip}) in {back:.1f} s; "
          f"{counts['failed']} of {counts['total']} requests through the workers failed")
    assert new_ip in {n["node_ip"] for n in alive_nodes()}
    assert counts["failed"] <= 0.01 * counts["total"] and counts["ok"] > 20, counts
