"""roles/ray_serve/files/serve_llm: the Serve LLM callback that skips the empty model download.

Ray and torch are not in the test venv: the callback's few imports are faked
here with what Ray 2.60's CallbackBase and cloud_utils provide. The
end-to-end proof (no download task in a real replica's log) is in
tests/integration/test_vllm_cpu_serving.py.
"""
from __future__ import annotations

import importlib.util
import sys
import types
from pathlib import Path

import pytest

SOURCE = Path(__file__).resolve().parents[2] / "roles/ray_serve/files/serve_llm/ray_compose_serve_llm.py"


class FakeCallbackBase:
    """As Ray's: the LLMConfig, and a ctx whose run_init_node defaults to True."""

    def __init__(self, llm_config):
        self.llm_config = llm_config
        self.ctx = types.SimpleNamespace(run_init_node=True)


def is_remote_path(path: str) -> bool:  # Ray's test, in short
    return path.startswith(("s3://", "gs://", "abfss://", "azure://"))


@pytest.fixture
def callback_class(monkeypatch, tmp_path):
    fakes = {
        "torch": types.SimpleNamespace(hub=types.SimpleNamespace(_get_torch_home=lambda: str(tmp_path / "torch"))),
        "ray.llm._internal.common.callbacks.base": types.SimpleNamespace(CallbackBase=FakeCallbackBase),
        "ray.llm._internal.common.utils.cloud_utils": types.SimpleNamespace(is_remote_path=is_remote_path),
    }
    for name, module in fakes.items():
        monkeypatch.setitem(sys.modules, name, module)
    spec = importlib.util.spec_from_file_location("ray_compose_serve_llm", SOURCE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.SkipEmptyNodeInit


def run(callback_class, model_id: str, mirror_config=None) -> bool:
    engine = types.SimpleNamespace(mirror_config=mirror_config, actual_hf_model_id=model_id)
    callback = callback_class(types.SimpleNamespace(get_engine_config=lambda: engine))
    callback.on_before_node_init()
    return callback.ctx.run_init_node


@pytest.mark.parametrize("model_id", ["/Models/Pretrained_Models/Qwen3-0.6B", "Qwen/Qwen3-0.6B"])
def test_nothing_to_download_skips_the_task(callback_class, model_id, tmp_path):
    assert run(callback_class, model_id) is False
    # What the skipped task did besides returning the model id.
    assert (tmp_path / "torch/kernels").is_dir()


def test_a_bucket_uri_keeps_the_task(callback_class):
    assert run(callback_class, "s3://bucket/Qwen3-0.6B") is True


def test_a_cloud_mirror_keeps_the_task(callback_class):
    assert run(callback_class, "Qwen/Qwen3-0.6B", mirror_config=object()) is True
