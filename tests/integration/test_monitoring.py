"""Prometheus (ray_monitoring_enabled) on the live cluster: every Ray node a
target and up, Serve's and vLLM's metrics queryable, the port on the host's
loopback only, the data on the head's host, the dashboard pointed at it.

Runs in scripts/test.sh's cluster stage after test_vllm_cpu_serving (its
vars file turns monitoring on), so requests went through Serve and Qwen3-0.6B
on vLLM already.
"""
from __future__ import annotations

import json
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from e2e.faults import container_ip, docker

pytestmark = pytest.mark.usefixtures("vllm_cpu_cluster")

PROMETHEUS = "http://127.0.0.1:9090"
DATA = Path("/opt/ray-cluster/monitoring/data")
NODES = ("ray-head", "ray-worker-1", "ray-worker-2")


def api(path: str, **params) -> dict:
    url = f"{PROMETHEUS}/api/v1/{path}" + ("?" + urllib.parse.urlencode(params) if params else "")
    with urllib.request.urlopen(url, timeout=30) as answer:
        body = json.load(answer)
    assert body["status"] == "success", body
    return body["data"]


def eventually(check, timeout: float, what: str):
    """check()'s value once it is truthy; fails with the last value after timeout seconds."""
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(2)
    raise AssertionError(f"{what} not seen within {timeout} s; last: {last}")


def test_every_node_is_a_target_and_up():
    nodes = {container_ip(name) for name in NODES}

    def up():
        targets = api("targets")["activeTargets"]
        hosts = {t["labels"]["instance"].rsplit(":", 1)[0] for t in targets
                 if t["labels"]["job"] == "ray" and t["health"] == "up"}
        gateway = [t for t in targets if t["labels"]["job"] == "gateway" and t["health"] == "up"]
        return (nodes <= hosts and gateway) and targets

    targets = eventually(up, 90, f"every node ({sorted(nodes)}) and the gateway as targets that are up")
    down = [(t["labels"]["instance"], t["lastError"]) for t in targets if t["health"] != "up"]
    print(f"{len(targets)} targets, {len(targets) - len(down)} up; down: {down}")
    assert not down, down


def test_serve_and_vllm_metrics_answer():
    requests = eventually(lambda: api("query", query="sum(ray_serve_num_http_requests_total)")["result"], 90,
                          "ray_serve_num_http_requests_total")
    assert float(requests[0]["value"][1]) > 0, requests
    # Ray has spelled vLLM's metrics both ways.
    vllm = eventually(lambda: api("query", query='count({__name__=~"ray_vllm[:_].+"})')["result"], 90,
                      "vLLM's metrics (ray_vllm: or ray_vllm_)")
    names = api("label/__name__/values")
    print(f"{int(float(vllm[0]['value'][1]))} vLLM series, e.g. "
          f"{[n for n in names if n.startswith('ray_vllm')][:5]}")
    assert int(float(vllm[0]["value"][1])) > 0


def test_prometheus_stays_on_loopback_and_keeps_its_data_on_the_host():
    assert docker("port", "ray-prometheus").split() == ["9090/tcp", "->", "127.0.0.1:9090"]
    stat = DATA.stat()
    assert (stat.st_uid, stat.st_mode & 0o777) == (1000, 0o700)
    assert any(DATA.iterdir()), "no data on the host"
    env = json.loads(docker("inspect", "-f", "{{json .Config.Env}}", "ray-head"))
    assert "RAY_PROMETHEUS_HOST=http://ray-prometheus:9090" in env, env


def test_the_dashboard_reads_prometheus():
    token = Path("/opt/ray-cluster/secrets/ray_auth_token").read_text().strip()
    request = urllib.request.Request("http://127.0.0.1:8265/api/prometheus_health",
                                     headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=30) as answer:
        body = json.load(answer)
    assert body.get("result") is True, body
