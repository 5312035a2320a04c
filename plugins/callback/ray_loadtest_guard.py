# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Stop a running load test when ansible-playbook is interrupted."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ray_loadtest_guard
type: aggregate
short_description: Stops a running load test when ansible-playbook is interrupted
description:
  - The C(ray_loadtest) role starts Locust on the head host as an async job. An
    C(always) block stops it when the play ends or fails, but Ansible runs no
    task after Ctrl-C or SIGTERM.
  - The role arms this guard (the fact C(ray_loadtest_guard)) before it starts
    Locust and disarms it after stopping it. If ansible-playbook exits while the
    guard is armed, the guard runs the role's stop command on that host, with the
    same inventory and connection settings, before the process ends.
  - Without the guard (callback not enabled, SIGKILL, lost connection, prompted
    passwords), the driver still stops Locust by itself once the play has not
    polled it for C(ray_loadtest_heartbeat_timeout) seconds.
requirements:
  - Enabled in ansible.cfg (C(callbacks_enabled = ray_loadtest_guard)).
"""

import atexit
import signal

from ansible.executor.task_queue_manager import TaskQueueManager
from ansible.playbook.play import Play
from ansible.plugins.callback import CallbackBase
from ansible.template import trust_as_template

FACT = "ray_loadtest_guard"
STOP_TIMEOUT_S = 60


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ray_loadtest_guard"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._armed = {}  # host name -> the guard fact (argv, become settings, run dir)
        self._play = None
        self._hooked = False
        self._prev_sigterm = None

    # -- events
    def v2_playbook_on_play_start(self, play):
        self._play = play

    def v2_runner_on_ok(self, result):
        facts = result.result.get("ansible_facts") or {}
        if FACT not in facts:
            return
        host = result.host.get_name()
        guard = facts[FACT]
        if guard:
            guard = dict(guard, become=result.task.become, become_user=result.task.become_user,
                         become_method=result.task.become_method)
            self._armed[host] = guard
            self._hook()
        else:
            self._armed.pop(host, None)

    # -- exit hooks
    def _hook(self):
        if self._hooked:
            return
        self._hooked = True
        atexit.register(self._on_exit)
        # Ansible's own SIGTERM handler kills the process outright, so atexit
        # would never run: turn SIGTERM into an orderly exit while armed.
        self._prev_sigterm = signal.getsignal(signal.SIGTERM)
        signal.signal(signal.SIGTERM, self._on_sigterm)

    def _on_sigterm(self, signum, frame):
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        if not self._armed and callable(self._prev_sigterm):
            self._prev_sigterm(signum, frame)
            return
        self._display.warning("SIGTERM: stopping the load test before exiting")
        raise SystemExit(128 + signum)

    def _on_exit(self):
        if not self._armed or self._play is None:
            return
        for host, guard in list(self._armed.items()):
            self._display.display(
                f"Interrupted: stopping the load test on {host} ({guard.get('run_dir', '')})",
                color="bright red", stderr=True)
            try:
                ok = self._stop(host, guard)
            except Exception as e:  # the process is ending: report, never raise
                ok = False
                self._display.warning(f"Could not stop the load test on {host}: {e}")
            if ok:
                self._display.display(
                    f"The load test on {host} is stopped. Its partial records stay in "
                    f"{guard.get('run_dir', 'the run directory')} until the next load test.", stderr=True)
            else:
                self._display.warning(
                    f"Stop it by hand on {host}: {' '.join(guard['argv'])}. Its driver also stops "
                    f"it by itself within the heartbeat timeout ({guard.get('heartbeat_timeout', '?')} s).")
            self._armed.pop(host, None)

    def _stop(self, host, guard):
        vm = self._play.get_variable_manager()
        loader = self._play._loader
        task = {
            "name": "Stop Locust and the load-test driver",
            "ansible.builtin.command": {"argv": guard["argv"]},
            "register": "ray_loadtest_guard_stop",
            # changed: something was still running and is stopped now.
            "changed_when": trust_as_template("(ray_loadtest_guard_stop.stdout | from_json).stopped"),
            "timeout": STOP_TIMEOUT_S,
        }
        for key in ("become", "become_user", "become_method"):
            if guard.get(key) is not None:
                task[key] = guard[key]
        play = Play().load(
            {"name": "Stop the interrupted load test", "hosts": [host], "gather_facts": False,
             "tasks": [task]},
            variable_manager=vm, loader=loader)
        tqm = TaskQueueManager(inventory=vm._inventory, variable_manager=vm, loader=loader,
                               passwords={}, forks=1)
        try:
            rc = tqm.run(play)
        finally:
            tqm.cleanup()
        return rc == 0
