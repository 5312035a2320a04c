"""Bad input stops loadtest.yml before any load is sent, with a message
that says what is wrong and how to fix it.

Runs the real loadtest.yml against the live cluster of the default
inventory (scripts/test.sh's `cluster` stage deploys echo-cpu on it).
"""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from helpers import ROOT, assert_failed_before, pgrep, run_playbook

pytestmark = pytest.mark.usefixtures("live_cluster")


def run_loadtest(*extra: str) -> subprocess.CompletedProcess:
    return run_playbook("loadtest.yml", *extra)


def assert_no_load(result: subprocess.CompletedProcess, *messages: str) -> None:
    assert_failed_before(result, "Start Locust", *messages)
    assert pgrep("locust") == [], "a locust process runs"


def test_application_missing():
    assert_no_load(run_loadtest("-e", "model=no-such-app"),
                   r"There is no Serve application no-such-app\. Applications:\s+echo-cpu RUNNING",
                   r"serve\.yml -e model=no-such-app")


@pytest.fixture
def failed_app():
    """A real DEPLOY_FAILED application next to echo-cpu, put through the module and removed afterwards."""
    token = Path("/opt/ray-cluster/secrets/ray_auth_token").read_text().strip()

    def module(**args):
        args = dict(dashboard_url="http://127.0.0.1:8265", token=token, name="broken", **args)
        return subprocess.run([str(Path(sys.executable).with_name("ansible")), "localhost", "-m", "ray_serve_app",
                               "-a", json.dumps(args)], cwd=ROOT, capture_output=True, text=True, timeout=120)

    result = module(config={"route_prefix": "/broken", "import_path": "no_such_module:app"}, wait_timeout=60)
    assert "DEPLOY_FAILED" in result.stdout, result.stdout[-2000:]
    yield "broken"
    module(state="absent")


def test_application_not_running(failed_app):
    assert_no_load(run_loadtest("-e", f"model={failed_app}"),
                   r"Serve application broken is DEPLOY_FAILED, not RUNNING\. Applications:.*broken DEPLOY_FAILED")


@pytest.mark.parametrize("setting, value", [
    ("ray_loadtest_users", "0"), ("ray_loadtest_users", "twenty"), ("ray_loadtest_users", "2.5"),
    ("ray_loadtest_spawn_rate", "-1"), ("ray_loadtest_run_time", "0"),
])
def test_locust_setting_not_positive(setting, value):
    assert_no_load(run_loadtest("-e", "model=echo-cpu", "-e", f"{setting}={value}"),
                   rf"{setting} is '{re.escape(value)}'", r"must be positive whole\s+numbers")


def test_negative_think_time():
    assert_no_load(run_loadtest("-e", "model=echo-cpu", "-e", "ray_loadtest_wait_s=-1"),
                   r"ray_loadtest_wait_s is '-1'; it must be a number of seconds, 0 or more")


@pytest.mark.parametrize("root, why", [
    ("/dev/null/reports", "its parent is missing or not writable"),
    ("/dev/null", "not a writable directory"),
])
def test_report_directory_not_writable(root, why):
    assert_no_load(run_loadtest("-e", "model=echo-cpu", "-e", f"ray_loadtest_report_root={root}"),
                   rf"The report directory {root} cannot be written on the\s+controller \({why}\)")


def test_early_end_not_a_whole_number():
    assert_no_load(run_loadtest("-e", "model=echo-cpu", "-e", "ray_loadtest_end_after_scale_up=-5"),
                   r"ray_loadtest_end_after_scale_up is '-5'; it must be a whole number of\s+seconds, 0 or more, or -1")
