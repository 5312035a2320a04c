"""Bad input stops serve.yml before anything changes, with a message that
says what is wrong and how to fix it.

These run the real serve.yml against the live cluster of the default
inventory, with the cpu image (scripts/test.sh's `cluster` stage brings it up
first; test_vllm_bad_input.py has the cases that need the vllm-cpu image), and read
Ray's real REST API before and after: every case must stop in the checks,
with changed=0 and the Serve applications exactly as they were.
"""
from __future__ import annotations

import re

import pytest

from helpers import assert_serve_stopped_early, extra, run_serve

pytestmark = pytest.mark.usefixtures("live_cluster")

AUTOSCALING = {"min_replicas": 1, "max_replicas": 2, "target_ongoing_requests": 5,
               "upscale_delay_s": 5, "downscale_delay_s": 30}


def test_unknown_model():
    assert_serve_stopped_early(run_serve("-e", "model=NoSuchModel"),
                         r"Unknown model 'NoSuchModel'\. Known models:\s+echo-cpu, echo-cpu-slow, Qwen3-0\.6B",
                         r"-e model=NAME")


def test_min_replicas_above_max():
    run = run_serve("-e", "model=echo-cpu", *extra(ray_serve_autoscaling=dict(AUTOSCALING, min_replicas=3)))
    assert_serve_stopped_early(run, r"min_replicas <= max_replicas", r"min_replicas=3,\s+max_replicas=2")


def test_unknown_autoscaling_field_is_refused_by_rays_schema():
    # Ray's REST API accepts this silently and the setting does nothing.
    autoscaling = dict(AUTOSCALING, upscale_delay_secs=5)
    run = run_serve("-e", "model=echo-cpu", *extra(ray_serve_autoscaling=autoscaling))
    assert_serve_stopped_early(run, r"the pinned Ray 2\.60\.0 refuse this Serve config",
                         r"autoscaling_config\.upscale_delay_secs: unknown field; AutoscalingConfig accepts:.*upscale_delay_s")


def test_unknown_deployment_field_is_refused_by_rays_schema():
    models = {"echo-cpu": {"engine": "app", "import_path": "openai_echo:app_builder",
                           "code": "examples/openai_echo", "deployment": "OpenAIEcho",
                           "deployment_options": {"max_ongoing_request": 8}}}
    run = run_serve("-e", "model=echo-cpu", *extra(ray_serve_models=models))
    assert_serve_stopped_early(run, r"deployments\[0\]\.max_ongoing_request: unknown field; DeploymentSchema accepts:")


def test_vllm_model_on_the_cpu_image():
    assert_serve_stopped_early(run_serve("-e", "model=Qwen3-0.6B"),
                         r"needs the vLLM engine, but the cluster runs the\s+'cpu' image",
                         r"ray_image_flavour: vllm \(GPU hosts\) or\s+ray_image_flavour: vllm-cpu \(hosts without a GPU\)")


def test_refused_ray_vllm_pair():
    run = run_serve("-e", "model=Qwen3-0.6B", "-e", "ray_image_flavour=vllm",
                    "-e", "ray_version=2.52.1", "-e", "ray_vllm_version=0.11.2")
    assert_serve_stopped_early(run, r"ray issue #58960", r"ray_vllm_pair_override")


def test_cluster_not_reachable():
    run = run_serve("-e", "model=echo-cpu", "-e", "ray_dashboard_port=1")
    assert_serve_stopped_early(run, r"at http://127\.0\.0\.1:1 is not ready for\s+serving", r"ansible-playbook site\.yml")


def test_bad_state():
    assert_serve_stopped_early(run_serve("-e", "model=echo-cpu", "-e", "ray_serve_state=gone"),
                         r"value of ray_serve_state must be one of: present, absent, got: gone")


def test_no_cluster_yet(tmp_path):
    missing = ("-e", f"ray_auth_token_file={tmp_path / 'ray_auth_token'}")
    assert_serve_stopped_early(run_serve("-e", "model=echo-cpu", *missing),
                         r"There is no cluster token at \S+ on localhost: the cluster has not been\s+created yet",
                         r"ansible-playbook site\.yml")
    # In check mode (as after site.yml --check on bare hosts) it says so and ends without failing.
    result, before, after = run_serve("-e", "model=echo-cpu", "--check", *missing)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-3000:]
    assert re.search(r"Check mode: there is no cluster on localhost yet", out), out[-3000:]
    assert after == before
