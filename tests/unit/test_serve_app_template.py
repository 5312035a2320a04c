"""roles/ray_serve/templates/app.json.j2: the Serve application config a catalog entry renders to."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

TEMPLATE = Path(__file__).resolve().parents[2] / "roles/ray_serve/templates/app.json.j2"
AUTOSCALING = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 5}
ECHO = {"engine": "app", "import_path": "openai_echo:app_builder", "code": "examples/openai_echo",
        "deployment": "OpenAIEcho", "args": {"model_id": "echo-cpu"}}
QWEN = {"engine": "vllm", "model_source": "/Models/Qwen3-0.6B", "cpu": {"kv_cache_gib": 1}}
DEFAULTS = {"ray_serve_model": "m", "ray_serve_autoscaling": AUTOSCALING, "ray_serve_route_prefix": "/",
            "ray_serve_apps_dir": "/opt/ray-cluster/apps", "ray_serve_code_file": "code.zip",
            "ray_serve_max_replicas_per_node": 0, "ray_serve_device": "cpu",
            "ray_serve_engine_kwargs": {"max_model_len": 8192}, "ray_serve_cpu_kv_cache_gib": 1,
            "ray_serve_cpu_ingress_num_cpus": 0.1, "ray_serve_cpu_replica_actor_num_cpus": 0,
            "ray_serve_llm_experimental_configs": {}}
# Each case: the entry and the variables that differ from DEFAULTS.
CASES = {
    "echo": (ECHO, {}),
    "echo spread 1": (ECHO, {"ray_serve_max_replicas_per_node": 1}),
    "echo spread '2'": (ECHO, {"ray_serve_max_replicas_per_node": "2"}),  # as -e passes it
    "echo own options": (dict(ECHO, deployment_options={"max_replicas_per_node": 3}),
                         {"ray_serve_max_replicas_per_node": 1}),
    "qwen": (QWEN, {}),
    "qwen spread 1": (QWEN, {"ray_serve_max_replicas_per_node": 1}),
    "qwen own runtime_env": (dict(QWEN, runtime_env={"py_modules": ["s3://b/m.zip"], "env_vars": {"A": "1"}}), {}),
}
# Ansible's templating runs in a process of its own, once for every case:
# importing it here would change how the module tests' AnsibleModule.warn()
# reports warnings.
RENDER = """
import json, sys
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar, trust_as_template
source, cases = json.load(sys.stdin)
print(json.dumps({name: json.loads(Templar(loader=DataLoader(), variables=v).template(trust_as_template(source)))
                  for name, v in cases.items()}))
"""


@pytest.fixture(scope="module")
def rendered() -> dict:
    cases = {name: dict(DEFAULTS, ray_serve_entry=entry, **overrides) for name, (entry, overrides) in CASES.items()}
    result = subprocess.run([sys.executable, "-c", RENDER], input=json.dumps([TEMPLATE.read_text(), cases]),
                            capture_output=True, text=True, check=True)
    return json.loads(result.stdout)


def test_an_app_entry_has_no_replica_limit_by_default(rendered):
    assert rendered["echo"]["deployments"] == [{"name": "OpenAIEcho", "autoscaling_config": AUTOSCALING}]


def test_max_replicas_per_node_reaches_an_app_deployment(rendered):
    assert rendered["echo spread 1"]["deployments"][0]["max_replicas_per_node"] == 1
    assert rendered["echo spread '2'"]["deployments"][0]["max_replicas_per_node"] == 2


def test_an_entrys_own_deployment_options_win(rendered):
    assert rendered["echo own options"]["deployments"][0]["max_replicas_per_node"] == 3


def test_max_replicas_per_node_reaches_a_vllm_deployment_config(rendered):
    config = rendered["qwen spread 1"]["args"]["llm_configs"][0]["deployment_config"]
    assert config["max_replicas_per_node"] == 1 and config["autoscaling_config"] == AUTOSCALING
    assert "max_replicas_per_node" not in rendered["qwen"]["args"]["llm_configs"][0]["deployment_config"]


def test_a_cpu_vllm_entry_gets_its_kv_cache_and_cpu_accelerator(rendered):
    llm = rendered["qwen"]["args"]["llm_configs"][0]
    assert llm["engine_kwargs"] == {"max_model_len": 8192, "kv_cache_memory_bytes": 1 << 30}
    assert llm["accelerator_config"] == {"kind": "cpu"}


def test_a_vllm_entry_imports_the_callback_that_skips_the_empty_download(rendered):
    llm = rendered["qwen"]["args"]["llm_configs"][0]
    assert llm["callback_config"] == {"callback_class": "ray_compose_serve_llm.SkipEmptyNodeInit"}
    assert rendered["qwen"]["runtime_env"] == {"py_modules": ["file:///opt/ray-cluster/apps/code.zip"]}


def test_an_entrys_own_py_modules_come_after_the_callback(rendered):
    assert rendered["qwen own runtime_env"]["runtime_env"] == {
        "py_modules": ["file:///opt/ray-cluster/apps/code.zip", "s3://b/m.zip"], "env_vars": {"A": "1"}}
