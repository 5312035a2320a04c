"""GPU workers in the Compose file, from nvidia-smi answers recorded on a real
GPU or written in its format for the reference host (tests/unit/fixtures/nvidia-smi/).

A stand-in nvidia-smi prints those answers; the ray_cluster role discovers,
chooses and places the GPUs and renders its real template, which
`docker compose config` must accept. Nothing starts. What needs a GPU host is
in the README ("GPU hosts").
"""
from __future__ import annotations

import json
import re
import stat
import sys
from pathlib import Path

from helpers import ROOT, ok, playbook, sh, words

SMI = ROOT / "tests/unit/fixtures/nvidia-smi"
UUIDS = ["GPU-0b1e6a2c-3f4d-4e5a-9b6c-7d8e9f0a1b2c", "GPU-1c2f7b3d-4a5e-4f6b-8c7d-8e9f0a1b2c3d",
         "GPU-2d3a8c4e-5b6f-4a7c-9d8e-9f0a1b2c3d4e"]


def fake_nvidia_smi(tmp_path: Path, gpus: str | None, apps: str | None = None) -> Path:
    script = tmp_path / "nvidia-smi"
    gpu_cmd = f"cat {SMI / gpus}" if gpus else "echo 'NVIDIA-SMI has failed because it could not communicate with the NVIDIA driver.'; exit 9"
    apps_cmd = f"cat {SMI / apps}" if apps else "true"
    script.write_text(f"#!/bin/sh\ncase \"$1\" in\n  --query-gpu=*) {gpu_cmd};;\n"
                      f"  --query-compute-apps=*) {apps_cmd};;\n  *) exit 9;;\nesac\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return script


def render(tmp_path: Path, gpus_file: str | None, *extra: str, apps: str | None = None):
    secrets = tmp_path / "project/secrets"
    secrets.mkdir(parents=True)
    (secrets / "ray_auth_token").write_text("0" * 64)
    smi = fake_nvidia_smi(tmp_path, gpus_file, apps)
    result = playbook(tmp_path, "tests/integration/render-compose.yml", "-e", f"ray_gpu_nvidia_smi={smi}", *extra)
    return result, tmp_path / "project/localhost.compose.yaml"


def config(compose: Path) -> dict:
    quiet = sh("docker", "compose", "-f", str(compose), "config", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    return json.loads(sh("docker", "compose", "-f", str(compose), "config", "--format", "json").stdout)


def gpu_layout(cfg: dict) -> dict:
    """service -> (device UUIDs reserved, --num-gpus)."""
    out = {}
    for name, svc in cfg["services"].items():
        devices = svc.get("deploy", {}).get("resources", {}).get("reservations", {}).get("devices", [])
        uuids = [u for d in devices if d.get("driver") == "nvidia" and "gpu" in d.get("capabilities", [])
                 for u in d.get("device_ids", [])]
        num = [int(a.split("=", 1)[1]) for a in svc["command"] if a.startswith("--num-gpus=")]
        out[name] = (uuids, num[0])
    return out


def test_reference_host_gpus_0_and_2(tmp_path):
    result, compose = render(tmp_path, "reference-3gpu-query-gpu.txt", "-e", '{"ray_gpus": [0, 2]}')
    out = ok(result)
    assert re.search(words("2 of 3 GPUs chosen on localhost (0, 2); left out GPU 1: not in ray_gpus"), out), out[-3000:]
    cfg = config(compose)
    assert gpu_layout(cfg) == {"ray-head": ([], 0), "ray-worker-1": ([UUIDS[0]], 1), "ray-worker-2": ([UUIDS[2]], 1)}
    text = compose.read_text()
    assert "# GPU 0: NVIDIA H100 80GB HBM3" in text and "# GPU 2: NVIDIA H100 80GB HBM3" in text
    # GPU workers keep the models (read-only), their shm size and the cluster's image.
    for worker in ("ray-worker-1", "ray-worker-2"):
        svc = cfg["services"][worker]
        models = [v for v in svc["volumes"] if v["target"] == "/Models/Pretrained_Models"]
        assert models and models[0]["read_only"], svc["volumes"]
        assert svc["shm_size"] and svc["image"] == cfg["services"]["ray-head"]["image"]


def test_auto_leaves_out_the_faulty_gpu(tmp_path):
    result, compose = render(tmp_path, "reference-3gpu-faulty-query-gpu.txt")
    out = ok(result)
    assert re.search(words("2 of 3 GPUs chosen on localhost (0, 2); left out GPU 1: nvidia-smi reports a fault"), out)
    assert gpu_layout(config(compose)) == {"ray-head": ([], 0), "ray-worker-1": ([UUIDS[0]], 1),
                                           "ray-worker-2": ([UUIDS[2]], 1)}


def test_auto_leaves_out_the_busy_gpu(tmp_path):
    result, compose = render(tmp_path, "reference-3gpu-query-gpu.txt",
                             apps="reference-3gpu-busy-query-compute-apps.txt")
    out = ok(result)
    assert re.search(words("left out GPU 1: busy: 1 other process(es) (pid 48211) use 30512 MiB"), out)
    assert set(gpu_layout(config(compose))) == {"ray-head", "ray-worker-1", "ray-worker-2"}


def test_per_host_layout_one_worker_with_both(tmp_path):
    result, compose = render(tmp_path, "reference-3gpu-query-gpu.txt", "-e", '{"ray_gpus": [0, 2]}',
                             "-e", "ray_gpu_layout=per_host")
    ok(result)
    assert gpu_layout(config(compose)) == {"ray-head": ([], 0), "ray-worker-1": ([UUIDS[0], UUIDS[2]], 2)}


def test_recorded_h200(tmp_path):
    result, compose = render(tmp_path, "h200-idle-query-gpu.txt")
    ok(result)
    assert gpu_layout(config(compose)) == {"ray-head": ([], 0),
                                           "ray-worker-1": (["GPU-c7b3c4e5-22fc-dc2c-f093-58385d67bec3"], 1)}


def test_no_driver_and_auto_gives_cpu_workers(tmp_path):
    result, compose = render(tmp_path, None, "-e", "ray_cluster_workers=2")
    out = ok(result)
    assert re.search(words("No working NVIDIA driver"), out)
    cfg = config(compose)
    assert gpu_layout(cfg) == {"ray-head": ([], 0), "ray-worker-1": ([], 0), "ray-worker-2": ([], 0)}
    assert "nvidia" not in compose.read_text()
    # The default GCS storage: RocksDB on the head's host.
    head = cfg["services"]["ray-head"]
    assert head["environment"]["RAY_gcs_storage"] == "rocksdb", head["environment"]
    assert "/ray-gcs" in [v["target"] for v in head["volumes"]], head["volumes"]


def test_gcs_storage_none_gives_the_head_no_storage(tmp_path):
    # Without fault tolerance: no storage setting, no storage mount and no
    # reconnect timeout on any node, no Redis (the default, RocksDB, below).
    result, compose = render(tmp_path, None, "-e", "ray_gcs_storage=none")
    ok(result)
    services = config(compose)["services"]
    assert "ray-head" in services and "ray-redis" not in services, set(services)
    for name, svc in services.items():
        env = svc.get("environment", {})
        assert not {"RAY_gcs_storage", "RAY_REDIS_ADDRESS", "RAY_gcs_rpc_server_reconnect_timeout_s"} & set(env), (name, env)
        assert "/ray-gcs" not in [v["target"] for v in svc.get("volumes", [])], (name, svc.get("volumes"))


def test_the_head_publishes_its_proxy_on_ray_serve_port(tmp_path):
    # Serve's proxy listens on Ray's 8000 in the container, whatever the host port.
    result, compose = render(tmp_path, None, "-e", "ray_serve_port=18000")
    ok(result)
    ports = {(p["published"], p["target"]) for p in config(compose)["services"]["ray-head"]["ports"]}
    assert ("18000", 8000) in ports, ports


H100_UUID = "GPU-49d4094d-05a7-0f25-b696-e056d7da0aee"


def test_hosts_each_get_their_own_workers(tmp_path):
    """Three hosts: a head, a GPU host (the H100 answers recorded on the lent
    device) and a CPU host with two workers. Host networking, pinned port sets
    per host, GPUs per host in the health expectations."""
    py = sys.executable
    smi = fake_nvidia_smi(tmp_path, "h100-idle-query-gpu.txt")
    common = f"ansible_connection=local ansible_python_interpreter={py} ray_cluster_node_ip=127.0.0.1"
    result = playbook(tmp_path, "tests/integration/render-compose.yml", "-e", f"render_dir={tmp_path}",
                      inventory_text=f"[ray_head]\nhead-host {common}\n[ray_workers]\n"
                                     f"gpu-host {common} ray_gpu_nvidia_smi={smi}\n"
                                     f"cpu-host {common} ray_gpus=[] ray_cluster_workers=2\n")
    out = ok(result)
    assert re.search(words("1 of 1 GPUs chosen on gpu-host (0)"), out), out[-3000:]
    expected = json.loads((tmp_path / "expected.json").read_text())
    assert expected["host_network"] is True
    assert [(h["name"], h["nodes"], h["gpus"]) for h in expected["hosts"]] == \
        [("head-host", 1, 0), ("gpu-host", 1, 1), ("cpu-host", 2, 0)]
    assert expected["totals"]["nodes"] == 4 and expected["totals"]["gpus"] == 1

    def flags(svc: dict) -> dict:
        return dict(a[2:].split("=", 1) for a in svc["command"] if a.startswith("--") and "=" in a)

    head, gpu, cpu = (config(tmp_path / f"{h}.compose.yaml") for h in ("head-host", "gpu-host", "cpu-host"))
    assert gpu_layout(gpu) == {"ray-worker-1": ([H100_UUID], 1)}
    assert gpu_layout(cpu) == {"ray-worker-1": ([], 0), "ray-worker-2": ([], 0)}
    for cfg in (head, gpu, cpu):
        assert all(s.get("network_mode") == "host" and not s.get("ports") for s in cfg["services"].values())
    assert flags(head["services"]["ray-head"])["node-manager-port"] == "20000"
    for cfg in (gpu, cpu):
        for i, svc in enumerate(sorted(cfg["services"]), start=1):
            f = flags(cfg["services"][svc])
            assert f["address"] == "127.0.0.1:6379" and f["node-ip-address"] == "127.0.0.1"
            assert f["node-manager-port"] == str(20000 + 200 * i), (svc, f)
