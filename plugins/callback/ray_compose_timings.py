# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Append each task's duration to a file, for the test suite's slowest-tasks list."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ray_compose_timings
type: aggregate
short_description: Records how long each task took, for scripts/test.sh
description:
  - Does nothing unless the environment variable C(RAY_COMPOSE_TIMINGS) names a
    file. Then it appends one tab-separated line per task when the task ends
    (the next task starts, or the play ends) - seconds, C(RAY_COMPOSE_STAGE),
    C(task), playbook and task name - so that C(scripts/test.sh) can print the
    slowest tasks of a whole run, over every playbook, Molecule's included.
  - A task's time runs over all its hosts, as the linear strategy runs them.
requirements:
  - Enabled in ansible.cfg (C(callbacks_enabled = ray_compose_timings)).
"""

import os
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "ray_compose_timings"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._path = os.environ.get("RAY_COMPOSE_TIMINGS")
        self._stage = os.environ.get("RAY_COMPOSE_STAGE", "-")
        self._playbook = "-"
        self._task = None  # (name, start)

    def _close(self):
        if self._task is None or not self._path:
            return
        name, start = self._task
        self._task = None
        line = "\t".join((f"{time.monotonic() - start:.1f}", self._stage, "task", f"{self._playbook}: {name}"))
        try:
            with open(self._path, "a", encoding="utf-8") as out:
                out.write(line.replace("\n", " ") + "\n")
        except OSError:
            pass  # timings are a convenience; never fail a run over them

    def _start(self, task):
        self._close()
        self._task = (task.get_name().strip(), time.monotonic())

    def v2_playbook_on_start(self, playbook):
        self._playbook = os.path.basename(playbook._file_name)

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._start(task)

    def v2_playbook_on_handler_task_start(self, task):
        self._start(task)

    def v2_playbook_on_play_start(self, play):
        self._close()

    def v2_playbook_on_stats(self, stats):
        self._close()
