"""Running the project's playbooks from the bad-input tests, and the checks they share."""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_playbook(playbook: str, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """ansible-playbook from this venv, with the project's ansible.cfg and plain output."""
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", ANSIBLE_CONFIG=str(ROOT / "ansible.cfg"))
    cmd = [str(Path(sys.executable).with_name("ansible-playbook")), playbook, *args]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)


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
