"""GCS fault tolerance with Redis (ray_gcs_storage=redis), on the live cluster,
and the air-gapped image (ray_image_archive_src) on the way there.

Runs against the live cluster of the default inventory (scripts/test.sh's
`cluster` stage, with echo-cpu deployed). The move to Redis finds the
image's name removed and must load it from a `docker save` archive, building
nothing; Redis starts empty, so site.yml's restore play deploys the recorded
echo-cpu again (the step a user takes after losing the GCS state). Then: the
password shows nowhere Docker shows, the head restarts, Redis stops for 30 s
under requests, the password changes (with the archive given again: not
loaded twice), and the cluster moves back to RocksDB (in CI, onto the
vllm-cpu image at once: RAY_COMPOSE_NEXT_IMAGE_VARS names its extra vars
file). Its Redis part also opts out of the gateway (ray_gateway_enabled=false:
the head publishes Serve's port itself, with no key); the move back turns the
gateway on again. A plain re-run on Redis changing nothing is the three-host
scenario's idempotence step, which runs on Redis.
"""
from __future__ import annotations

import json
import os
import re
import secrets
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from e2e.faults import DASHBOARD, TWO_REPLICAS, RequestLoop, answers, cluster_back, docker, wait_back, worker_proxies
from helpers import SERVE, ok, run_playbook, serve_state, wait_for

pytestmark = pytest.mark.usefixtures("live_cluster")

REDIS = ("-e", "ray_gcs_storage=redis", "-e", "ray_gateway_enabled=false")
PASSWORD_FILE = Path("/opt/ray-cluster/secrets/redis_password")
GCS_DIR = Path("/opt/ray-cluster/gcs/redis")


def project_containers() -> list[str]:
    return docker("ps", "-a", "--filter", "label=com.docker.compose.project=ray", "--format", "{{.Names}}").split()


def image_archive(tmp_path_factory) -> Path:
    """The image's archive: the one scripts/test.sh's images stage saved for every
    lane (so no other lane reads the tag while it is gone), else saved here."""
    saved = os.environ.get("RAY_COMPOSE_IMAGE_ARCHIVES")
    archive = Path(saved or tmp_path_factory.mktemp("archive")) / "ray.tar"
    if not archive.exists():
        docker("save", "-o", str(archive), docker("inspect", "-f", "{{.Config.Image}}", "ray-head").strip())
    return archive


@pytest.fixture(scope="module")
def archived(tmp_path_factory) -> tuple[str, str]:
    return ("-e", f"ray_image_archive_src={image_archive(tmp_path_factory)}")


LOAD_CHANGED = re.compile(r"TASK \[ray_image : Load the image\][^\n]*\nchanged: \[localhost\]")


def test_move_to_redis_loads_the_missing_image_and_keeps_the_application(archived):
    image = docker("inspect", "-f", "{{.Config.Image}}", "ray-head").strip()
    image_id = docker("image", "inspect", "-f", "{{.Id}}", image).strip()
    docker("image", "rm", "--force", image)  # only the name goes: the running containers hold the image
    assert docker("image", "ls", "-q", image).strip() == ""
    out = ok(run_playbook("site.yml", *REDIS, *archived))
    # Air-gapped: loaded from the archive, nothing built, the very same image.
    assert LOAD_CHANGED.search(out), out[-3000:]
    assert "TASK [ray_image : Render the Dockerfile]" not in out, "built although an archive was given"
    assert docker("image", "inspect", "-f", "{{.Id}}", image).strip() == image_id
    assert "ray-redis" in project_containers(), out[-3000:]
    # Redis starts empty: the restore play deploys the recorded echo-cpu again.
    wait_for(lambda apps: "echo-cpu" in apps, 60, "echo-cpu restored on Redis")
    # Two replicas, one per worker: both workers' proxies serve during the faults below.
    ok(run_playbook("serve.yml", "-e", "model=echo-cpu", *REDIS, "-e", TWO_REPLICAS))
    # Redis's append-only files are on the head's host.
    assert list(GCS_DIR.glob("appendonlydir/*.aof*")), sorted(GCS_DIR.rglob("*"))
    # The gateway is off: gone, and the head's own proxy answers on 8000 without a key.
    assert "ray-gateway" not in docker("ps", "-a", "--format", "{{.Names}}").split()
    assert "8000/tcp" in docker("port", "ray-head")
    with urllib.request.urlopen(SERVE + "/v1/models", timeout=30) as answer:
        assert "echo-cpu" in [m["id"] for m in json.load(answer)["data"]]


def test_redis_password_is_nowhere_docker_shows():
    password = PASSWORD_FILE.read_text().strip()
    assert len(password) >= 16
    stat = PASSWORD_FILE.stat()
    assert (stat.st_uid, stat.st_mode & 0o777) == (1000, 0o600)
    for name in project_containers():
        assert password not in docker("inspect", name), f"docker inspect {name} shows the Redis password"
        logs = subprocess.run(["docker", "logs", name], capture_output=True, text=True, timeout=60)
        assert password not in logs.stdout + logs.stderr, f"docker logs {name} shows the Redis password"
    assert password not in Path("/opt/ray-cluster/compose.yaml").read_text()
    # The head's own `ray start` takes it from the secret inside the process, not from its argv.
    head = docker("top", "ray-head", "-eo", "pid,args")
    starts = [line for line in head.splitlines() if "ray.scripts.scripts" in line]
    assert starts and not [line for line in starts if password in line], head
    # Redis accepts the password, and refuses a client without it.
    assert docker("exec", "ray-redis", "sh", "-c",
                  'REDISCLI_AUTH="$(cat /run/secrets/redis_password)" redis-cli ping').strip() == "PONG"
    assert "NOAUTH" in docker("exec", "ray-redis", "redis-cli", "ping")


def test_head_restart_on_redis_fails_no_request(tmp_path):
    wait_back(180)  # the move to Redis restarted the workers: every proxy is up first
    workers = worker_proxies()
    assert len(workers) == 2, workers
    loop = RequestLoop(tmp_path / "stop", workers)
    time.sleep(3)
    docker("restart", "ray-head")
    back = wait_back(60)
    time.sleep(2)
    counts = loop.stop()
    print(f"head restart on Redis: back in {back:.1f} s; {counts['failed']} of {counts['total']} failed")
    assert counts["failed"] == 0, counts
    assert counts["ok"] > 20, counts


def test_redis_down_for_30_seconds_recovers_by_itself(tmp_path):
    """What users see while Redis is away: the head restarts in a loop (its GCS
    cannot reach its storage), so the dashboard and the head's endpoint are
    gone; the workers wait for the head and their proxies keep serving."""
    wait_back(180)
    workers = worker_proxies()
    assert len(workers) == 2, workers
    head_restarts = int(docker("inspect", "-f", "{{.RestartCount}}", "ray-head"))
    loop = RequestLoop(tmp_path / "stop", workers)
    time.sleep(3)
    start = time.monotonic()
    docker("stop", "ray-redis")
    away = {"dashboard": 0.0, "head endpoint": 0.0}
    redis_back = None
    while True:
        t = time.monotonic() - start
        if redis_back is None and t >= 30:
            docker("start", "ray-redis")
            redis_back = t
        tick = time.monotonic()
        up = {"dashboard": answers(DASHBOARD + "/api/gcs_healthz"),
              "head endpoint": answers("http://127.0.0.1:8000/-/healthz")}
        if redis_back is not None and all(up.values()) and cluster_back():
            back = time.monotonic() - start
            break
        assert t < 240, f"the cluster was not back 240 s after Redis stopped ({up})"
        time.sleep(max(0.0, 0.5 - (time.monotonic() - tick)))
        for what, is_up in up.items():
            away[what] += 0 if is_up else time.monotonic() - tick
    time.sleep(2)
    counts = loop.stop()
    restarts = int(docker("inspect", "-f", "{{.RestartCount}}", "ray-head")) - head_restarts
    total = counts["total"]
    print(f"Redis stopped for 30 s: everything back {back:.1f} s after the stop; the head restarted {restarts} times; "
          f"dashboard away {away['dashboard']:.0f} s, the head's endpoint away {away['head endpoint']:.0f} s; "
          f"through the workers' proxies {counts['failed']} of {total} requests failed")
    assert counts["failed"] <= 0.01 * total, counts
    assert counts["ok"] > 50, counts
    assert restarts >= 1, "the head did not notice Redis was gone"
    assert away["dashboard"] > 10, "the head kept answering without its storage"


def test_changed_redis_password_restarts_redis_and_head(archived):
    new = "rotated-" + secrets.token_hex(12)  # a new one on every run
    out = ok(run_playbook("site.yml", *REDIS, *archived, "-e", f"ray_cluster_redis_password={new}"))
    assert new not in out
    # The archive again, with the image present: not loaded a second time.
    assert "TASK [ray_image : Load the image]" in out and not LOAD_CHANGED.search(out), out[-3000:]
    assert re.search(r"Restart Redis and the head for the changed Redis password\]\s*\**\s*changed:", out), out[-3000:]
    assert PASSWORD_FILE.read_text().strip() == new
    wait_back(120)
    # The state survived in Redis: no redeploy was needed.
    assert "echo-cpu" in serve_state()


def test_back_to_rocksdb():
    # scripts/test.sh's cluster stage moves on to the vllm-cpu image here,
    # and the gateway comes back on (the default), so that the move back,
    # the gateway and the image change recreate the nodes once.
    image_vars = os.environ.get("RAY_COMPOSE_NEXT_IMAGE_VARS")
    ok(run_playbook("site.yml", *(("-e", f"@{image_vars}") if image_vars else ())))
    assert "ray-redis" not in project_containers()
    wait_for(lambda apps: "echo-cpu" in apps, 120, "echo-cpu back on RocksDB")
