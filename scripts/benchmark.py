#!/usr/bin/env python3
"""Print the project's speed figures on this machine (not a test: it asserts nothing).

  scripts/benchmark.sh [--cold]

Figures:
  1. site.yml first run vs re-run (goal: re-run <= 1/5 of the first, changed=0).
     With --cold the first run starts with no cluster, no Ray/base images and no
     build cache (debootstrap and pip downloads included; Docker itself stays
     installed); otherwise it starts from a stopped cluster.
  2. `docker compose up` to healthy with images cached (goal: <= 60 s).
  3. ray_cluster_health vs the seed's way, a Ray job running a health script
     submitted with `ray job submit --working-dir` (goal: module <= 1 s, >= 10x faster).
  4. Serve, with the CPU test application echo-cpu: deploy to RUNNING
     (goal <= 15 s) and an identical re-deploy (goal <= 2 s, no replica
     restarted), by the ray_serve_app module; serve.yml first run and re-run.
  5. Autoscaling under a 60 s Locust load on echo-cpu-slow (loadtest.yml):
     load start to the second replica RUNNING (goal <= upscale delay + 10 s)
     and load end to back at one replica (goal <= downscale delay + 15 s).
  6. Faults, with GCS fault tolerance (rocksdb, the default, and redis) and
     without (none), echo-cpu at 2 replicas and requests flowing through the workers'
     proxies (tests/e2e/request_loop.py): a head restart and a worker crash
     (kill -9 of its main process): seconds until every node, the
     application and its proxies are back, and failed requests. With redis
     also Redis stopped for 30 s (timed from the stop).
Uses the default inventory (this machine) and tears nothing down at the end.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests/e2e"))
from faults import (DASHBOARD, TWO_REPLICAS, RequestLoop, alive_nodes, cluster_back, container_ip,  # noqa: E402
                    worker_proxies)
BIN = Path(sys.executable).parent
PROJECT = "/opt/ray-cluster"
HEALTH_SCRIPT = """\
import ray
ray.init(address="auto")
alive = [n for n in ray.nodes() if n["Alive"]]
print("alive nodes:", len(alive), "CPUs:", ray.cluster_resources().get("CPU", 0))
"""


def sh(cmd, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, text=True, capture_output=True, **kw)


def timed(cmd) -> tuple[float, subprocess.CompletedProcess]:
    start = time.monotonic()
    result = sh(cmd)
    return time.monotonic() - start, result


def playbook(*args) -> tuple[float, int]:
    seconds, result = timed([str(BIN / "ansible-playbook"), *args])
    if result.returncode:
        sys.exit(f"ansible-playbook {' '.join(args)} failed:\n{result.stdout[-3000:]}")
    changed = sum(int(n) for n in re.findall(r"changed=(\d+)", result.stdout.split("PLAY RECAP")[-1]))
    return seconds, changed


def token() -> str:
    return Path(PROJECT, "secrets/ray_auth_token").read_text().strip()


def health_module() -> tuple[float, float]:
    """Wall time of one ad-hoc module call, and the module's own elapsed time."""
    args = json.dumps({"dashboard_url": DASHBOARD, "token": token(), "min_nodes": 3})
    seconds, result = timed([str(BIN / "ansible"), "localhost", "-m", "ray_cluster_health", "-a", args, "-o"])
    if result.returncode:
        sys.exit(f"health module failed: {result.stdout[-2000:]}")
    elapsed = float(re.search(r'"elapsed":\s*([0-9.]+)', result.stdout).group(1))
    return seconds, elapsed


def health_job(workdir: str) -> float:
    cmd = ["docker", "exec", "-w", workdir, "ray-head", "ray", "job", "submit", "--address", DASHBOARD,
           "--working-dir", ".", "--", "python", "healthcheck.py"]
    seconds, result = timed(cmd)
    if result.returncode or "alive nodes: 3" not in result.stdout:
        sys.exit(f"health job failed: {result.stdout[-2000:]}{result.stderr[-2000:]}")
    return seconds


def serve_module(config: dict | None, state: str = "present") -> dict:
    """One ad-hoc ray_serve_app call; its JSON result plus the wall time."""
    args = {"dashboard_url": DASHBOARD, "token": token(), "name": "echo-cpu", "state": state}
    if config is not None:
        args["config"] = config
    seconds, result = timed([str(BIN / "ansible"), "localhost", "-m", "ray_serve_app", "-a", json.dumps(args), "-o"])
    if result.returncode:
        sys.exit(f"ray_serve_app failed: {result.stdout[-3000:]}")
    answer = json.loads(result.stdout.split("=>", 1)[1])
    answer["wall"] = seconds
    return answer


def serve_figures() -> None:
    print("== 4. Serve: the CPU test application echo-cpu")
    playbook("serve.yml", "-e", "model=echo-cpu", "-e", "ray_serve_state=absent")
    first, first_changed = playbook("serve.yml", "-e", "model=echo-cpu")
    again, again_changed = playbook("serve.yml", "-e", "model=echo-cpu")
    print(f"serve.yml first deploy (checks, code, deploy, wait, smoke test): {first:.1f} s, changed={first_changed}; "
          f"re-run: {again:.1f} s, changed={again_changed}")
    config = json.loads(Path(PROJECT, "serve/applications.json").read_text())["echo-cpu"]
    serve_module(None, state="absent")
    deploy = serve_module(config)
    redeploy = serve_module(config)
    print(f"deploy to RUNNING: {deploy['elapsed']:.2f} s in the module, {deploy['wall']:.2f} s as an ad-hoc call "
          f"(goal <= 15 s); {deploy['replicas']} replica(s)")
    print(f"identical re-deploy: {redeploy['elapsed']:.3f} s in the module, {redeploy['wall']:.2f} s as an ad-hoc call, "
          f"changed={redeploy['changed']}, replicas {'unchanged' if redeploy['replica_ids'] == deploy['replica_ids'] else 'RESTARTED'} "
          f"(goal <= 2 s, no restart)")


def loadtest_figures() -> None:
    print("== 5. Autoscaling under load: echo-cpu-slow, 20 users, 60 s (loadtest.yml)")
    playbook("serve.yml", "-e", "model=echo-cpu-slow")
    with tempfile.TemporaryDirectory() as reports:
        seconds, _ = playbook("loadtest.yml", "-e", "model=echo-cpu-slow", "-e", "ray_loadtest_run_time=60",
                              "-e", f"ray_loadtest_report_root={reports}")
        verdict = json.loads(next(Path(reports).glob("*/verdict.json")).read_text())
    reaction, goals = verdict["reaction"], verdict.get("goals", {})
    print(f"loadtest.yml took {seconds:.0f} s; verdict {'PASS' if verdict['ok'] else 'FAIL'}; "
          f"{verdict['requests']} requests, {verdict['failures']} failed")
    print(f"load start to scale-up decided: {reaction['load_start_to_scale_decided_s']} s; "
          f"to the second replica RUNNING: {reaction['load_start_to_replica_running_s']} s "
          f"(goal <= {goals.get('upscale_s')} s)")
    print(f"load end to back at one replica: {reaction['load_end_to_back_at_min_s']} s "
          f"(goal <= {goals.get('downscale_s')} s)")



def fault(name: str, command: list[str], limit: float = 120, new_node_from: str | None = None,
          then: list[str] | None = None, after: float = 30) -> str:
    """Run a fault under load; seconds until the cluster is back (or a note), and the request counts.
    new_node_from: a container that must register again as a new node (a crashed worker).
    then: ends the fault `after` seconds after command (e.g. starts a stopped Redis again)."""
    ip = old_ids = None
    if new_node_from:
        ip = container_ip(new_node_from)
        old_ids = frozenset(n["node_id"] for n in alive_nodes())
    loop = RequestLoop(Path(tempfile.gettempdir(), "benchmark-loop.stop"), worker_proxies())
    time.sleep(3)
    start = time.monotonic()
    sh(command)
    time.sleep(2)
    if then:
        time.sleep(max(0.0, after - (time.monotonic() - start)))
        sh(then)
    back = None
    while time.monotonic() - start < limit:
        if cluster_back(new_node_ip=ip, old_ids=old_ids or frozenset()):
            back = time.monotonic() - start
            break
        time.sleep(0.5)
    time.sleep(2)
    counts = loop.stop()
    came = f"back in {back:.1f} s" if back is not None else f"NOT back within {limit:.0f} s (application lost?)"
    return f"{name}: {came}; {counts['failed']} of {counts['total']} requests failed"


def fault_figures() -> None:
    print("== 6. Faults under load: echo-cpu at 2 replicas, requests through the workers' proxies")
    for storage in ("rocksdb", "redis", "none"):
        playbook("site.yml", "-e", f"ray_gcs_storage={storage}")
        playbook("serve.yml", "-e", "model=echo-cpu", "-e", TWO_REPLICAS)
        label = f"fault tolerance on ({storage})" if storage != "none" else "fault tolerance off (none)"
        print(f"{label}: " + fault("head restart", ["docker", "restart", "ray-head"]))
        if storage == "redis":
            print(f"{label}: " + fault("Redis stopped for 30 s", ["docker", "stop", "ray-redis"],
                                       then=["docker", "start", "ray-redis"], after=30, limit=240))
        if storage == "none":
            playbook("site.yml", "-e", "ray_gcs_storage=none")  # deploys the lost application again
            playbook("serve.yml", "-e", "model=echo-cpu", "-e", TWO_REPLICAS)
        pid = sh(["docker", "inspect", "-f", "{{.State.Pid}}", "ray-worker-1"]).stdout.strip()
        print(f"{label}: " + fault("worker crash", ["kill", "-9", pid], new_node_from="ray-worker-1"))
    playbook("site.yml")
    playbook("serve.yml", "-e", "model=echo-cpu")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="remove the Ray and base images first")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["serve", "loadtest", "faults"],
                        help="print only these figures (on a running cluster)")
    opts = parser.parse_args()
    if opts.only:
        {"serve": serve_figures, "loadtest": loadtest_figures, "faults": fault_figures}[opts.only]()
        return

    print("== 1. site.yml first run vs re-run")
    playbook("playbooks/teardown.yml")
    if opts.cold:
        sh(["docker", "image", "rm", "-f", "ray-compose/ray:2.60.0-cpu", "ray-compose/debian-minbase:bookworm"])
        sh(["docker", "builder", "prune", "--all", "--force"])
    first, first_changed = playbook("site.yml")
    again, again_changed = playbook("site.yml")
    print(f"first run ({'cold: debootstrap + image build included' if opts.cold else 'images cached, cluster down'}): "
          f"{first:.1f} s, changed={first_changed}")
    print(f"re-run: {again:.1f} s, changed={again_changed}  ratio {again / first:.2f} (goal <= 0.20, changed=0)")

    print("== 2. compose up to healthy, images cached")
    sh(["docker", "compose", "--project-directory", PROJECT, "down"])
    start = time.monotonic()
    sh(["docker", "compose", "--project-directory", PROJECT, "up", "-d"])
    up = time.monotonic() - start
    args = json.dumps({"dashboard_url": DASHBOARD, "token": token(), "min_nodes": 3, "wait_timeout": 180, "interval": 0.5})
    result = sh([str(BIN / "ansible"), "localhost", "-m", "ray_cluster_health", "-a", args, "-o"])
    healthy = time.monotonic() - start
    print(f"compose up -d returned after {up:.1f} s; 3 nodes alive after {healthy:.1f} s (goal <= 60 s)"
          + ("" if result.returncode == 0 else "  [health check FAILED]"))

    print(f"== 3. health: module vs Ray job (median of {opts.repeat})")
    with tempfile.TemporaryDirectory() as tmp:
        workdir = "/tmp/ray-benchmark-health"
        Path(tmp, "healthcheck.py").write_text(HEALTH_SCRIPT)
        sh(["docker", "exec", "ray-head", "mkdir", "-p", workdir])
        sh(["docker", "cp", f"{tmp}/healthcheck.py", f"ray-head:{workdir}/healthcheck.py"])
        jobs = [health_job(workdir) for _ in range(opts.repeat)]
    modules = [health_module() for _ in range(opts.repeat)]
    job = statistics.median(jobs)
    inside = statistics.median(m[1] for m in modules)
    wall = statistics.median(m[0] for m in modules)
    print(f"ray job submit --working-dir (seed's way): {job:.2f} s")
    print(f"ray_cluster_health: {inside:.3f} s inside the module, {wall:.2f} s as an ad-hoc ansible call")
    print(f"speed-up: {job / inside:.0f}x on the module's own time, {job / wall:.1f}x including Ansible's start-up "
          "(goal: module <= 1 s, >= 10x)")

    serve_figures()
    loadtest_figures()
    fault_figures()


if __name__ == "__main__":
    main()
