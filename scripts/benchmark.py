#!/usr/bin/env python3
"""Print the project's speed figures on this machine (not a test: it asserts nothing).

  scripts/benchmark.sh [--cold]
  scripts/benchmark.sh --only vllm    the real engine on CPU (figure 7), alone

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
  7. (--only vllm) vLLM on CPU, the catalog's Qwen3-0.6B on the vllm-cpu image,
     with a random-weight test checkpoint (scripts/make-test-checkpoint.py)
     of the real model's size (--checkpoint full, the default: the same
     compute per token as Qwen3-0.6B) or the tiny one CI uses (--checkpoint
     tiny: almost no compute, so it measures Serve's per-chunk overhead). Real
     weights already at the catalog's path are used as they are:
     a. Ray Serve LLM against bare `vllm serve` from the same image and
        checkpoint, one at a time, at the same concurrency, prompt and output
        length: output tokens/s of each (goal: Serve >= 0.9 of bare) and p50
        time to first token; Serve at several stream_batching_interval_ms
        (10, 50: Ray's default, 100, 200), each the median of 3 rounds after
        a warm-up round at full concurrency.
     b. Replica start: deploy to RUNNING (no other load) with an empty and
        with a warm compile cache (ray_cluster_vllm_cache_dir), twice each
        (goal: with the cache <= 1/3 of without), as serve.yml's wall time
        and as Serve's own figure for the replica (its controller's log:
        actor start to RUNNING, without the playbook's checks). Then the
        second replica's start during a scale-up (Serve's figure), twice each
        with the cache the first replica left on the host emptied and kept:
        a fresh deploy at 1-2 replicas, then more concurrent streams than
        its target until the second replica is RUNNING.
  8. (--only gateway) The gateway (ray_gateway_enabled) against Serve's
     proxy directly: echo-cpu at 2 replicas, one per worker, and the same
     closed loop of short chat completions (keep-alive connections, a few
     at a time) through the gateway's port and straight to a worker's
     proxy, alternating rounds in one run: p50 latency added (goal <= 1 ms)
     and requests/s (goal: gateway >= 0.98 of direct).
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

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the e2e package, as pytest.ini gives it to the tests
from e2e.faults import (DASHBOARD, TWO_REPLICAS, RequestLoop, alive_nodes, cluster_back, container_ip,  # noqa: E402
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


MODEL = "Qwen3-0.6B"
CHECKPOINT = Path("/Models/Pretrained_Models") / MODEL
VLLM_CACHE = Path(PROJECT, "cache/vllm")
BARE = "ray-benchmark-vllm"
BARE_PORT = 8100
# The same load on both: concurrent streams, each a fixed prompt and exactly max_tokens out.
GATEWAY_KEY_FILE = Path(PROJECT, "secrets/gateway_api_key")
LOAD = {"concurrency": 8, "requests": 48, "rounds": 3, "max_tokens": 128,
        "prompt": "Explain in a few sentences what a Ray cluster is and why it autoscales. " * 4}
# A full-size model on a CPU core makes tens of tokens per second: two requests per stream.
FULL_SIZE_REQUESTS = 16
# serve_qwen's autoscaling target: LOAD's concurrency is above it, so a load wants a second replica.
TARGET_ONGOING = 5


def vllm_cpu_vars() -> list[str]:
    """-e arguments for the vllm-cpu image on this machine (scripts/lib/vllm-cpu-vars.sh)."""
    result = sh([str(ROOT / "scripts/lib/vllm-cpu-vars.sh")])
    if result.returncode:
        sys.exit(f"scripts/lib/vllm-cpu-vars.sh failed: {result.stderr}")
    return ["-e", json.dumps(yaml.safe_load(result.stdout))]


def gateway_key() -> str:
    """The gateway's generated key, if it generated one (it is on by default); else none."""
    return GATEWAY_KEY_FILE.read_text().strip() if GATEWAY_KEY_FILE.exists() else ""


def stream_chat(client, model: str):
    """One LOAD request, streamed with exactly max_tokens out (ignore_eos): its chunks, as they come."""
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": LOAD["prompt"]}], max_tokens=LOAD["max_tokens"],
        stream=True, stream_options={"include_usage": True}, extra_body={"ignore_eos": True})


def stream_load(base_url: str, model: str, key: str = "") -> dict:
    """LOAD against an OpenAI endpoint (with this API key, if any): output tokens/s over the whole run and p50
    time to first token."""
    from concurrent.futures import ThreadPoolExecutor

    from openai import OpenAI
    client = OpenAI(base_url=base_url, api_key=key or "unused", timeout=300, max_retries=0)

    def one(_):
        start = time.monotonic()
        first, tokens = None, 0
        for chunk in stream_chat(client, model):
            if chunk.usage is not None:
                tokens = chunk.usage.completion_tokens
            if first is None and any(c.delta.content for c in chunk.choices):
                first = time.monotonic()
        return (first - start) * 1000 if first else None, tokens

    rounds = []
    with ThreadPoolExecutor(LOAD["concurrency"]) as pool:
        # Warm up at full concurrency: the first batches of a new size cost
        # the engine a compile, which would go to whichever setting ran first.
        list(pool.map(one, range(LOAD["concurrency"])))
        for _ in range(LOAD["rounds"]):
            start = time.monotonic()
            results = list(pool.map(one, range(LOAD["requests"])))
            wall = time.monotonic() - start
            rounds.append({"tokens_per_s": sum(r[1] for r in results) / wall,
                           "ttft_p50_ms": statistics.median(r[0] for r in results if r[0] is not None)})
    # The median round by output tokens/s (rounds of one setting spread by up to a tenth here).
    return sorted(rounds, key=lambda r: r["tokens_per_s"])[len(rounds) // 2]


def serve_qwen(min_replicas: int, max_replicas: int, **experimental) -> None:
    """serve.yml for the catalog's Qwen3-0.6B with fixed replicas and Serve LLM experimental configs."""
    autoscaling = {"min_replicas": min_replicas, "max_replicas": max_replicas}
    extra = {"ray_serve_autoscaling": {**autoscaling, "target_ongoing_requests": TARGET_ONGOING, "upscale_delay_s": 5,
                                       "downscale_delay_s": 30}}
    if experimental:
        extra["ray_serve_llm_experimental_configs"] = experimental
    playbook("serve.yml", "-e", f"model={MODEL}", "-e", json.dumps(extra), "-e", "ray_serve_smoke_test=false")


def replica_figures() -> list[float]:
    """Serve's own start time of every LLMServer replica so far: its controller's "started successfully ... after N s"
    (actor start to RUNNING), in the head's logs on this host."""
    found = re.compile(r"deployment='LLMServer[^']*'.* started successfully .* after ([0-9.]+)s")
    return [float(m.group(1)) for log in sorted(Path(PROJECT, "logs/ray-head").glob("session_*/logs/serve/controller_[0-9]*.log"))
            for m in map(found.search, log.read_text(errors="replace").splitlines()) if m]


def empty_vllm_cache() -> None:
    """Remove vLLM's and inductor's compile caches from the host (the directory stays: the workers mount it)."""
    sh(["rm", "-rf", *[str(p) for p in VLLM_CACHE.glob("*")]])


def replica_worker() -> str:
    """The worker container that ran the newest LLMServer replica: its replica log is the last written."""
    logs = Path(PROJECT, "logs")
    found = sorted(logs.glob("ray-worker-*/session_*/logs/serve/replica_*LLMServer*.log"), key=lambda p: p.stat().st_mtime)
    return found[-1].relative_to(logs).parts[0] if found else "ray-worker-1"


def replica_start(cache: bool) -> tuple[float, float]:
    """Qwen3-0.6B at one replica after removing it (and the cache): seconds from serve.yml's start to RUNNING, and
    Serve's own figure for the replica."""
    playbook("serve.yml", "-e", f"model={MODEL}", "-e", "ray_serve_state=absent")
    if not cache:
        empty_vllm_cache()
    seen = len(replica_figures())
    start = time.monotonic()
    serve_qwen(1, 1)
    wall = time.monotonic() - start
    new = replica_figures()[seen:]
    return wall, new[-1] if new else float("nan")


def scale_up_start(cache: bool) -> float:
    """Serve's own start time of the second replica when a load scales Qwen3-0.6B from 1 to 2 replicas, with the
    compile cache the first replica left on the host kept or emptied once that replica is RUNNING."""
    import threading

    from openai import OpenAI
    playbook("serve.yml", "-e", f"model={MODEL}", "-e", "ray_serve_state=absent")
    serve_qwen(1, 2)
    if not cache:
        empty_vllm_cache()
    seen = len(replica_figures())
    client = OpenAI(base_url="http://127.0.0.1:8000/v1", api_key=gateway_key() or "unused", timeout=300, max_retries=0)
    stop = threading.Event()

    def stream():
        while not stop.is_set():
            try:
                for _ in stream_chat(client, MODEL):
                    pass
            except Exception:  # noqa: BLE001 - a failed request is still load; the figure is the replica's start
                time.sleep(1)

    # More ongoing requests than TARGET_ONGOING per replica: Serve wants 2 replicas.
    threads = [threading.Thread(target=stream, daemon=True) for _ in range(LOAD["concurrency"])]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 900
    while len(replica_figures()) <= seen and time.monotonic() < deadline:
        time.sleep(2)
    stop.set()
    for thread in threads:
        thread.join()
    new = replica_figures()[seen:]
    return new[-1] if new else float("nan")


def test_checkpoint(image: str, size: str) -> str:
    """Make the test checkpoint of this size at the catalog's path, unless real weights are there; say which."""
    marker = CHECKPOINT / "RAY_COMPOSE_TEST_CHECKPOINT"
    if (CHECKPOINT / "config.json").exists() and not marker.exists():
        return f"real weights in {CHECKPOINT}"
    if not marker.exists() or marker.read_text().strip() != size:
        sh(["rm", "-rf", str(CHECKPOINT)])
        sh(["install", "-d", "-o", "1000", "-g", "1000", str(CHECKPOINT)])
        subprocess.run(["docker", "run", "--rm", "-i", "-u", "1000:1000", "-v", f"{CHECKPOINT}:/out", "--entrypoint",
                        "python", image, "-", *(["--full-size"] if size == "full" else []), "/out"],
                       stdin=open(ROOT / "scripts/make-test-checkpoint.py"), check=True, capture_output=True)
        marker.write_text(size + "\n")
    return f"random weights, {size} size (scripts/make-test-checkpoint.py)"


def vllm_figures(checkpoint: str) -> None:
    playbook("site.yml", *vllm_cpu_vars())
    image = sh(["docker", "inspect", "--format", "{{.Config.Image}}", "ray-head"]).stdout.strip()
    weights = test_checkpoint(image, checkpoint)
    if checkpoint == "full" or not weights.startswith("random"):
        LOAD["requests"] = FULL_SIZE_REQUESTS
    print(f"== 7. vLLM on CPU: Qwen3-0.6B ({weights}) on the vllm-cpu image")
    for app in ("echo-cpu", "echo-cpu-slow"):
        playbook("serve.yml", "-e", f"model={app}", "-e", "ray_serve_state=absent")

    print(f"-- 7a. Ray Serve LLM vs bare vllm serve: {LOAD['concurrency']} concurrent streams, "
          f"{LOAD['requests']} requests of {LOAD['max_tokens']} tokens, median of {LOAD['rounds']} rounds")
    figures = {}
    for interval in (50, 10, 100, 200):
        serve_qwen(1, 1, stream_batching_interval_ms=interval)
        name = f"Serve LLM, stream_batching_interval_ms={interval}"
        figures[name] = stream_load("http://127.0.0.1:8000/v1", MODEL, gateway_key())
        print(f"{name}: {figures[name]['tokens_per_s']:.0f} output tokens/s, "
              f"p50 time to first token {figures[name]['ttft_p50_ms']:.0f} ms", flush=True)
    playbook("serve.yml", "-e", f"model={MODEL}", "-e", "ray_serve_state=absent")
    sh(["docker", "rm", "-f", BARE])
    # The same CPUs, /dev/shm and vLLM settings as the worker that ran Serve's
    # last replica (ray_cluster_worker_cpusets pins each CPU worker to cores of
    # its own; vLLM's engine wants more than Docker's 64 MiB of /dev/shm).
    name = replica_worker()
    worker = json.loads(sh(["docker", "inspect", name]).stdout)[0]
    pinning = ["--shm-size", str(worker["HostConfig"]["ShmSize"])]
    if worker["HostConfig"]["CpusetCpus"]:
        pinning += ["--cpuset-cpus", worker["HostConfig"]["CpusetCpus"]]
    for env in worker["Config"]["Env"]:
        if env.startswith(("VLLM_CPU_", "VLLM_USE_AOT_COMPILE=", "TORCHINDUCTOR_CACHE_DIR=", "OMP_")):
            pinning += ["-e", env]
    print(f"bare vllm serve runs with {name}'s CPUs and settings: {' '.join(pinning) or 'all CPUs'}")
    bare = sh(["docker", "run", "-d", "--name", BARE, "-u", "1000:1000", "-p", f"127.0.0.1:{BARE_PORT}:8000", *pinning,
               "-v", f"{CHECKPOINT.parent}:{CHECKPOINT.parent}:ro", "-v", f"{VLLM_CACHE}:/var/cache/vllm",
               "-e", "VLLM_CACHE_ROOT=/var/cache/vllm", "--entrypoint", "vllm", image,
               "serve", str(CHECKPOINT), "--served-model-name", MODEL, "--host", "0.0.0.0", "--port", "8000",
               "--max-model-len", "8192", "--kv-cache-memory-bytes", str(1 << 30)])
    if bare.returncode:
        sys.exit(f"docker run vllm serve failed: {bare.stderr}")
    try:
        deadline = time.monotonic() + 600
        while sh(["curl", "-sf", f"http://127.0.0.1:{BARE_PORT}/v1/models"]).returncode:
            if sh(["docker", "inspect", "-f", "{{.State.Running}}", BARE]).stdout.strip() != "true":
                sys.exit("bare vllm serve exited: " + sh(["docker", "logs", BARE]).stderr[-2000:])
            if time.monotonic() > deadline:
                sys.exit("bare vllm serve did not answer within 600 s: " + sh(["docker", "logs", BARE]).stderr[-2000:])
            time.sleep(2)
        figures["bare vllm serve"] = stream_load(f"http://127.0.0.1:{BARE_PORT}/v1", MODEL)
    finally:
        sh(["docker", "rm", "-f", BARE])
    base = figures["bare vllm serve"]["tokens_per_s"]
    for name, f in figures.items():
        print(f"{name}: {f['tokens_per_s']:.0f} output tokens/s ({f['tokens_per_s'] / base:.2f} of bare), "
              f"p50 time to first token {f['ttft_p50_ms']:.0f} ms")
    print("goal: Serve LLM >= 0.90 of bare vllm serve's output tokens/s")

    print("-- 7b. Replica start, with and without vLLM's compile cache on the host")
    starts = {"empty": [], "warm": []}
    for _ in range(2):
        starts["empty"].append(replica_start(cache=False))
        starts["warm"].append(replica_start(cache=True))
    for index, what in ((0, "serve.yml deploy to RUNNING (one replica, no smoke test)"),
                        (1, "the replica's own start (Serve's controller: actor start to RUNNING)")):
        empty, warm = (statistics.median(t[index] for t in starts[key]) for key in ("empty", "warm"))
        print(f"{what}: {empty:.0f} s with an empty cache ({', '.join(f'{t[index]:.0f}' for t in starts['empty'])}), "
              f"{warm:.0f} s with a warm one ({', '.join(f'{t[index]:.0f}' for t in starts['warm'])}); "
              f"ratio {warm / empty:.2f} (goal <= 0.33)")
    scale_ups = {"emptied": [], "kept": []}
    for _ in range(2):
        scale_ups["emptied"].append(scale_up_start(cache=False))
        scale_ups["kept"].append(scale_up_start(cache=True))
    emptied, kept = (statistics.median(scale_ups[key]) for key in ("emptied", "kept"))
    print(f"the second replica's own start during a scale-up ({LOAD['concurrency']} streams against a target of "
          f"{TARGET_ONGOING} per replica): {emptied:.0f} s with the cache emptied after the first replica started "
          f"({', '.join(f'{t:.0f}' for t in scale_ups['emptied'])}), {kept:.0f} s with the first replica's cache kept "
          f"({', '.join(f'{t:.0f}' for t in scale_ups['kept'])}); ratio {kept / emptied:.2f} (goal <= 0.33)")
    serve_qwen(1, 2)


# Benchmark 8's closed loop: this many clients, each sending one request after another, for this long per round.
HTTP_LOOP = {"clients": 4, "seconds": 15, "rounds": 5}


def http_loop(host: str, port: int, key: str) -> dict:
    """HTTP_LOOP against one endpoint: requests/s and p50 latency of echo-cpu chat completions."""
    import http.client
    from concurrent.futures import ThreadPoolExecutor
    body = json.dumps({"model": "echo-cpu", "messages": [{"role": "user", "content": "ping"}], "max_tokens": 8})
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}

    def client(_):
        connection, latencies, failed = http.client.HTTPConnection(host, port, timeout=30), [], 0
        end = time.monotonic() + HTTP_LOOP["seconds"]
        while time.monotonic() < end:
            start = time.monotonic()
            try:
                connection.request("POST", "/v1/chat/completions", body, headers)
                answer = connection.getresponse()
                answer.read()
                if answer.status != 200:
                    raise RuntimeError(answer.status)
                latencies.append(time.monotonic() - start)
            except Exception:  # noqa: BLE001 - counted; a fresh connection for the next
                failed += 1
                connection.close()
        connection.close()
        return latencies, failed

    with ThreadPoolExecutor(HTTP_LOOP["clients"]) as pool:
        results = list(pool.map(client, range(HTTP_LOOP["clients"])))
    latencies = [t for r in results for t in r[0]]
    return {"rps": len(latencies) / HTTP_LOOP["seconds"], "p50_ms": statistics.median(latencies) * 1000,
            "failed": sum(r[1] for r in results)}


def gateway_figures() -> None:
    print("== 8. The gateway against Serve's proxy directly: echo-cpu at 2 replicas")
    # Only echo-cpu: nothing else competes for the cores.
    for app in ("echo-cpu-slow", "Qwen3-0.6B"):
        playbook("serve.yml", "-e", f"model={app}", "-e", "ray_serve_state=absent")
    playbook("site.yml", "-e", "ray_gateway_enabled=true")
    playbook("serve.yml", "-e", "ray_gateway_enabled=true", "-e", "model=echo-cpu", "-e", TWO_REPLICAS)
    key = gateway_key()
    worker = container_ip("ray-worker-1")
    targets = {"gateway (127.0.0.1:8000)": ("127.0.0.1", 8000), f"direct (ray-worker-1's proxy, {worker}:8000)": (worker, 8000)}
    rounds = {name: [] for name in targets}
    http_loop("127.0.0.1", 8000, key)  # warm up
    for _ in range(HTTP_LOOP["rounds"]):
        for name, (host, port) in targets.items():
            rounds[name].append(http_loop(host, port, key))
    figures = {name: {"rps": statistics.median(r["rps"] for r in runs), "p50_ms": statistics.median(r["p50_ms"] for r in runs),
                      "failed": sum(r["failed"] for r in runs)} for name, runs in rounds.items()}
    via, straight = figures.values()
    # Rounds run back to back, so each ratio compares like with like on a noisy machine.
    ratios = [g["rps"] / d["rps"] for g, d in zip(*rounds.values())]
    added = [g["p50_ms"] - d["p50_ms"] for g, d in zip(*rounds.values())]
    for name, f in figures.items():
        print(f"{name}: {f['rps']:.0f} requests/s, p50 {f['p50_ms']:.1f} ms, {f['failed']} failed "
              f"({HTTP_LOOP['clients']} clients, median of {HTTP_LOOP['rounds']} rounds of {HTTP_LOOP['seconds']} s)")
    print(f"the gateway adds {via['p50_ms'] - straight['p50_ms']:.2f} ms at p50 (goal <= 1 ms) and keeps "
          f"{via['rps'] / straight['rps']:.2f} of direct requests/s (goal >= 0.98); round by round: "
          f"{', '.join(f'{a:+.1f}' for a in added)} ms, {', '.join(f'{r:.2f}' for r in ratios)} of direct")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cold", action="store_true", help="remove the Ray and base images first")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--only", choices=["serve", "loadtest", "faults", "vllm", "gateway"],
                        help="print only these figures (on a running cluster)")
    parser.add_argument("--checkpoint", choices=["full", "tiny"], default="full",
                        help="size of the random-weight test checkpoint for --only vllm (default: full)")
    opts = parser.parse_args()
    if opts.only:
        {"serve": serve_figures, "loadtest": loadtest_figures, "faults": fault_figures,
         "vllm": lambda: vllm_figures(opts.checkpoint), "gateway": gateway_figures}[opts.only]()
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
