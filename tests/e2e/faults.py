"""What the fault tests and the benchmark share, on the host that runs the
cluster: the cluster as an operator checks it, through the dashboard's REST
API, and a request loop (request_loop.py) running during a fault.

Standard library only.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

DASHBOARD = "http://127.0.0.1:8265"
TOKEN_FILE = Path("/opt/ray-cluster/secrets/ray_auth_token")
LOOP = Path(__file__).with_name("request_loop.py")
# serve.yml extra vars: echo-cpu at exactly 2 replicas, one per worker, so
# that both workers run a proxy (EveryNode puts proxies only where replicas are).
# One replica on each worker: Serve runs a proxy only where a replica runs,
# and both replicas on one worker leave nothing when that worker goes.
TWO_REPLICAS = json.dumps({"ray_serve_autoscaling": {"min_replicas": 2, "max_replicas": 2, "target_ongoing_requests": 5,
                                                     "upscale_delay_s": 5, "downscale_delay_s": 30},
                           "ray_serve_max_replicas_per_node": 1})


def api(path: str, timeout: float = 5) -> dict:
    request = urllib.request.Request(DASHBOARD + path, headers={
        "Authorization": "Bearer " + TOKEN_FILE.read_text().strip(), "User-Agent": "ray-compose-tests"})
    with urllib.request.urlopen(request, timeout=timeout) as answer:
        return json.load(answer)


def alive_nodes() -> list[dict]:
    return api("/api/v0/nodes?filter_keys=state&filter_predicates=%3D&filter_values=ALIVE")["data"]["result"]["result"]


# What cluster_back saw last, for the message of a wait that ran out.
last_seen: dict = {}


def cluster_back(app: str = "echo-cpu", min_nodes: int = 3, new_node_ip: str | None = None,
                 old_ids: frozenset = frozenset()) -> bool:
    """Every node alive (a new one from new_node_ip, if given), the application
    RUNNING, every proxy that is not draining HEALTHY."""
    last_seen.clear()
    try:
        nodes = alive_nodes()
        serve = api("/api/serve/applications/")
    except Exception as exc:  # noqa: BLE001 - the head is away
        last_seen["dashboard"] = repr(exc)[:200]
        return False
    application = serve["applications"].get(app, {})
    proxies = {p["status"] for p in serve.get("proxies", {}).values() if p["status"] != "DRAINING"}
    last_seen.update(nodes=len(nodes), app=application.get("status"), proxies=sorted(proxies),
                     deployments={name: [d.get("status"), d.get("message", "")[:300],
                                         sorted(r["state"] for r in d.get("replicas", []))]
                                  for name, d in application.get("deployments", {}).items()})
    if new_node_ip and not [n for n in nodes if n["node_ip"] == new_node_ip and n["node_id"] not in old_ids]:
        last_seen["new node"] = f"none yet from {new_node_ip}"
        return False
    return len(nodes) >= min_nodes and application.get("status") == "RUNNING" and proxies == {"HEALTHY"}


def wait_back(timeout: float, since: float | None = None, **back) -> float:
    """Seconds from `since` (a time.monotonic(); default now) until cluster_back(**back) holds."""
    start = time.monotonic() if since is None else since
    while not cluster_back(**back):
        if time.monotonic() - start >= timeout:
            raise AssertionError(f"the cluster was not back within {timeout} s; last seen: {json.dumps(last_seen)}")
        time.sleep(0.5)
    return time.monotonic() - start


def docker(*args: str, check: bool = True) -> str:
    """docker's output; raises CalledProcessError on failure unless check is False."""
    return subprocess.run(["docker", *args], check=check, capture_output=True, text=True, timeout=120).stdout


def container_ip(name: str) -> str:
    """The container's address on its first network (the one the workers share)."""
    out = subprocess.run(["docker", "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}", name],
                         check=True, capture_output=True, text=True, timeout=60).stdout
    return out.split()[0]


def answers(url: str, timeout: float = 2) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as answer:
            return answer.status == 200
    except Exception:  # noqa: BLE001 - anything but 200 is "away"
        return False


def worker_proxies(names=("ray-worker-1", "ray-worker-2")) -> list[str]:
    """The workers' Serve endpoints that answer now."""
    urls = [f"http://{container_ip(name)}:8000" for name in names]
    return [url for url in urls if answers(url + "/-/healthz")]


class RequestLoop:
    """request_loop.py in the background; stop() returns its counts."""

    def __init__(self, stop_file: Path, urls: list[str], model: str = "echo-cpu", max_seconds: int = 400,
                 timeout: float = 10, api_key: str = ""):
        self.stop_file = Path(stop_file)
        self.stop_file.unlink(missing_ok=True)
        env = dict(os.environ, REQUEST_LOOP_API_KEY=api_key)
        self.process = subprocess.Popen([sys.executable, str(LOOP), f"--stop={self.stop_file}", f"--model={model}",
                                         f"--max-seconds={max_seconds}", f"--timeout={timeout}", *urls],
                                        stdout=subprocess.PIPE, text=True, env=env)

    def stop(self) -> dict:
        self.stop_file.touch()
        counts = json.loads(self.process.communicate(timeout=60)[0])
        counts["total"] = counts["ok"] + counts["failed"]
        return counts
