"""Bad input for a vLLM entry stops serve.yml before anything changes.

These run the real serve.yml against the live cluster of the default
inventory running the vllm-cpu image (scripts/test.sh's `cluster` stage
switches to it after the cpu-image tests), with echo-cpu still serving `/`.
Each case must stop in the checks, with changed=0 and Ray's Serve
applications exactly as they were.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers import assert_serve_stopped_early, extra, run_serve

pytestmark = pytest.mark.usefixtures("vllm_cpu_cluster")

MODELS_DIR = Path("/Models/Pretrained_Models")


@pytest.fixture()
def checkpoint(tmp_path):
    """A directory of fake weights under the models directory, which every node mounts."""
    path = MODELS_DIR / f"ray-compose-test-{tmp_path.name}"
    path.mkdir(parents=True)
    yield path
    shutil.rmtree(path)


def qwen(source: Path, **fields) -> tuple[str, str]:
    """-e ray_serve_models with one vllm entry named Qwen3-0.6B on its own route."""
    entry = {"engine": "vllm", "model_source": str(source), "route_prefix": "/qwen", **fields}
    return extra(ray_serve_models={"Qwen3-0.6B": entry})


def test_weights_missing(tmp_path):
    run = run_serve("-e", "model=Qwen3-0.6B", "-e", f"ray_models_dir={tmp_path}")
    assert_serve_stopped_early(run, rf"no model at {tmp_path}/Qwen3-0\.6B\s+\(config\.json missing\) on localhost",
                         rf"huggingface-cli download Qwen/Qwen3-0\.6B\s+--local-dir {tmp_path}/Qwen3-0\.6B")


def test_weights_without_config_json(checkpoint):
    (checkpoint / "model.safetensors").write_bytes(b"\0" * 64)
    run = run_serve("-e", "model=Qwen3-0.6B", *qwen(checkpoint))
    assert_serve_stopped_early(run, rf"no model at {checkpoint}\s+\(config\.json missing\) on localhost")


def test_config_json_that_is_not_a_model_config(checkpoint):
    (checkpoint / "config.json").write_text("[]")
    run = run_serve("-e", "model=Qwen3-0.6B", *qwen(checkpoint))
    assert_serve_stopped_early(run, rf"{checkpoint}/config\.json on localhost\s+is not a model config")


def test_architecture_vllm_cannot_load(checkpoint):
    (checkpoint / "config.json").write_text(json.dumps({"architectures": ["NoSuchModelForCausalLM"]}))
    run = run_serve("-e", "model=Qwen3-0.6B", *qwen(checkpoint))
    assert_serve_stopped_early(run, r"the pinned Ray 2\.60\.0 and vLLM 0\.29\.0 refuse this Serve config",
                         r"NoSuchModelForCausalLM checkpoint, which vLLM\s+0\.29\.0 cannot load")


def test_tensor_parallel_on_cpu(checkpoint):
    (checkpoint / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"]}))
    run = run_serve("-e", "model=Qwen3-0.6B", *qwen(checkpoint, engine_kwargs={"tensor_parallel_size": 2}))
    assert_serve_stopped_early(run, r"sets tensor_parallel_size 2", r"CPU replica\s+\(the vllm-cpu image\)",
                         r"autoscaling\.max_replicas")


def test_not_enough_memory(checkpoint):
    (checkpoint / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"]}))
    run = run_serve("-e", "model=Qwen3-0.6B", *qwen(checkpoint, cpu={"kv_cache_gib": 64}))
    assert_serve_stopped_early(run, r"2 CPU replica\(s\) need\s+1[0-9]{2}\.[0-9] GiB,\s+66\.[0-9] GiB each",
                         r"KV cache 64\.0", r"room for 0:\s+localhost has [0-9.]+ GiB available",
                         r"Lower autoscaling\.max_replicas or cpu\.kv_cache_gib")


def test_gpu_device_on_the_cpu_image(checkpoint):
    (checkpoint / "config.json").write_text(json.dumps({"architectures": ["Qwen3ForCausalLM"]}))
    run = run_serve("-e", "model=Qwen3-0.6B", *qwen(checkpoint, device="gpu"))
    assert_serve_stopped_early(run, r"asks for device 'gpu', but the cluster runs the\s+'vllm-cpu' image",
                         r"CPUs only", r"ray_image_flavour: vllm\b")


def test_route_taken_by_another_application():
    # echo-cpu (deployed by the cluster stage) still serves /; the catalog's Qwen3-0.6B wants / too.
    run = run_serve("-e", "model=Qwen3-0.6B")
    assert_serve_stopped_early(run, r"route_prefix / is already\s+used by echo-cpu", r"Give this entry its own\s+route_prefix")
