"""Prometheus (ray_monitoring_enabled) on the live cluster: every Ray node a
target and up, Serve's and vLLM's metrics queryable, the port on the host's
loopback only, the data on the head's host, the dashboard pointed at it; and
Grafana's provisioning (CI runs no Grafana: its image is on Docker Hub).

Runs in scripts/test.sh's cluster stage after test_vllm_cpu_serving (its
vars file turns monitoring on), so requests went through Serve and Qwen3-0.6B
on vLLM already.
"""
from __future__ import annotations

import json
import os
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
import yaml

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

    # A target Prometheus has not scraped yet is "unknown" for up to one
    # interval: a node that restarted (the head, just before) exports again,
    # the dashboard's metrics on a new port.
    deadline = time.monotonic() + 90
    while True:
        targets = api("targets")["activeTargets"]
        hosts = {t["labels"]["instance"].rsplit(":", 1)[0] for t in targets
                 if t["labels"]["job"] == "ray" and t["health"] == "up"}
        gateway = [t for t in targets if t["labels"]["job"] == "gateway" and t["health"] == "up"]
        down = [(t["labels"]["instance"], t["health"], t["lastError"]) for t in targets if t["health"] != "up"]
        if (nodes <= hosts and gateway and not down) or time.monotonic() > deadline:
            break
        time.sleep(2)
    print(f"{len(targets)} targets, {len(targets) - len(down)} up; not up: {down}")
    assert nodes <= hosts, f"nodes {sorted(nodes - hosts)} are not targets that are up"
    assert gateway, "the gateway's exporter is not a target that is up"
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


PROVISIONING = Path("/opt/ray-cluster/monitoring/grafana/provisioning")
HEAD_TMP = Path("/opt/ray-cluster/logs/ray-head")  # the head's /tmp/ray, as Prometheus and Grafana mount it
RAY_DASHBOARDS = {"default", "serve", "serve_deployment", "serve_llm"}


def on_host(container_path: str) -> Path:
    """A path under the head's /tmp/ray, on the host, following its absolute session_latest link."""
    relative = Path(container_path).relative_to("/tmp/ray")
    session = HEAD_TMP / relative.parts[0]
    if session.is_symlink():
        session = HEAD_TMP / Path(os.readlink(session)).relative_to("/tmp/ray")
    return session.joinpath(*relative.parts[1:])


def references(node):
    """Every value of a "datasource" key in a dashboard."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "datasource":
                yield value
            yield from references(value)
    elif isinstance(node, list):
        for value in node:
            yield from references(value)


def test_grafana_provisioning_parses_and_every_dashboard_finds_its_data_source():
    """CI runs no Grafana (its image is on Docker Hub): the provisioning it would read is checked instead."""
    sources = yaml.safe_load((PROVISIONING / "datasources/ray.yml").read_text())["datasources"]
    assert len(sources) == 1, sources
    source = sources[0]
    # The name the Ray dashboard selects in the panels it embeds; Prometheus as Grafana would reach it.
    assert (source["name"], source["type"], source["url"]) == ("Prometheus", "prometheus", "http://ray-prometheus:9090")
    docker("exec", "ray-head", "python3", "-c",
           "import urllib.request; urllib.request.urlopen('http://ray-prometheus:9090/-/ready', timeout=10)")

    providers = yaml.safe_load((PROVISIONING / "dashboards/ray.yml").read_text())["providers"]
    assert [p["type"] for p in providers] == ["file"], providers
    folder = on_host(providers[0]["options"]["path"])
    dashboards = {path.name.removesuffix("_grafana_dashboard.json"): json.loads(path.read_text())
                  for path in folder.glob("*.json")}
    assert RAY_DASHBOARDS <= set(dashboards), sorted(dashboards)

    unresolved = []
    for name, dashboard in dashboards.items():
        variables = {v["name"]: v for v in dashboard.get("templating", {}).get("list", [])}
        for ref in references(dashboard):
            uid = ref.get("uid") if isinstance(ref, dict) else ref
            if uid is None or uid in ("-- Grafana --", "grafana", source["uid"], source["name"]):
                continue  # the default data source (ours), Grafana's own, or ours by uid or name
            if isinstance(uid, str) and uid.startswith("$"):
                variable = variables.get(uid.strip("${}"))
                if variable and variable.get("type") == "datasource" and variable.get("query") == source["type"]:
                    continue  # a data source variable: it lists ours
            unresolved.append((name, ref))
    print(f"{len(dashboards)} Ray dashboards, data source {source['name']} ({source['uid']}); unresolved: {unresolved}")
    assert not unresolved, unresolved
