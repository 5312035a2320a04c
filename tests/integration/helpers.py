"""What the integration tests share: running the project's playbooks, reading
the live cluster's Serve state, and the checks on a run's output."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LOCAL = "ansible_connection=local ansible_python_interpreter=/usr/bin/python3"
# One host that is both head and worker, for playbooks run on their own inventory.
ONE_HOST = f"[ray_head]\nlocalhost {LOCAL}\n[ray_workers]\nlocalhost {LOCAL}\n"
TOKEN_FILE = Path("/opt/ray-cluster/secrets/ray_auth_token")
DASHBOARD = "http://127.0.0.1:8265"
# The model endpoint of the default inventory's cluster: Ray's Serve port, or
# the gateway (ray_gateway_enabled) in front of it.
SERVE = "http://127.0.0.1:8000"
GATEWAY_KEY_FILE = Path("/opt/ray-cluster/secrets/gateway_api_key")
# Extra vars of the live cluster's image (and gateway) that scripts/test.sh
# passes on, so that the tests' own playbook runs keep them.
IMAGE_VARS = ("-e", f"@{os.environ['RAY_COMPOSE_IMAGE_VARS']}") if os.environ.get("RAY_COMPOSE_IMAGE_VARS") else ()


def gateway_running() -> bool:
    result = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", "ray-gateway"],
                            capture_output=True, text=True, timeout=60)
    return result.stdout.strip() == "true"


def serve_key() -> str:
    """The API key the model endpoint wants: the gateway's generated key when it runs, else none."""
    return GATEWAY_KEY_FILE.read_text().strip() if gateway_running() else ""


def run_playbook(playbook: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """ansible-playbook from this venv, with the project's ansible.cfg and plain output."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), playbook, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


def playbook(tmp_path: Path, path: str, *extra: str, inventory_text: str = ONE_HOST) -> subprocess.CompletedProcess:
    """A playbook on its own inventory and project directory under tmp_path, with the vllm image flavour."""
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(inventory_text)
    return run_playbook(path, "-i", str(inventory), "-e", f"ray_project_dir={tmp_path / 'project'}",
                        "-e", "ray_image_flavour=vllm", *extra, timeout=600)


def sh(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, capture_output=True, text=True, timeout=300, **kwargs)


def ok(result: subprocess.CompletedProcess) -> str:
    """The run's output, after asserting that it succeeded."""
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-6000:]
    return out


def words(text: str) -> str:
    """A regex for text whose spaces may have become line breaks in Ansible's output."""
    return r"\s+".join(map(re.escape, text.split()))


def assert_failed_before(result: subprocess.CompletedProcess, first_change: str, *messages: str) -> None:
    """The run failed with these messages, changed nothing, and never reached the task `first_change`."""
    out = result.stdout + result.stderr
    assert result.returncode != 0, out[-3000:]
    for message in messages:
        assert re.search(message, out, re.S), f"expected {message!r} in:\n{out[-4000:]}"
    assert re.search(r"changed=0\b", out), out[-2000:]
    assert first_change not in out, out[-2000:]


def pgrep(pattern: str) -> list[str]:
    """`pgrep -af pattern`, in this PID namespace only: the Molecule lane's test host runs its own Locust."""
    res = subprocess.run(["pgrep", "--ns", str(os.getpid()), "--nslist", "pid", "-af", pattern],
                         capture_output=True, text=True)
    return [line for line in res.stdout.splitlines() if "pgrep" not in line]


# --- the live cluster's Serve applications ------------------------------------

def serve_state() -> dict:
    """Deployed configs and running replica ids per application, from Ray."""
    request = urllib.request.Request(DASHBOARD + "/api/serve/applications/", headers={
        "Authorization": "Bearer " + TOKEN_FILE.read_text().strip(), "User-Agent": "ray-compose-tests"})
    with urllib.request.urlopen(request, timeout=10) as answer:
        apps = json.load(answer)["applications"]
    return {name: (app.get("deployed_app_config"),
                   sorted(r["replica_id"] for d in app["deployments"].values() for r in d["replicas"]))
            for name, app in apps.items()}


def wait_for(predicate, timeout: float, what: str) -> dict:
    """The Serve state once predicate(state) holds; fails after timeout seconds."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = serve_state()
            if predicate(last):
                return last
        except Exception as exc:  # noqa: BLE001 - the head is restarting
            last = exc
        time.sleep(2)
    raise AssertionError(f"{what} not seen within {timeout} s; last: {last}")


def extra(**values) -> tuple[str, str]:
    """-e with these values as JSON."""
    return "-e", json.dumps(values)


def run_serve(*args: str) -> tuple[subprocess.CompletedProcess, dict, dict]:
    """serve.yml with these arguments, and the Serve state before and after it."""
    before = serve_state()
    result = run_playbook("serve.yml", *args)
    return result, before, serve_state()


def assert_serve_stopped_early(run, *messages: str) -> None:
    """serve.yml failed in its checks with these messages, and Serve is exactly as before."""
    result, before, after = run
    assert_failed_before(result, "Apply the desired state of Serve application", *messages)
    assert after == before, f"Serve applications changed:\nbefore {before}\nafter  {after}"
