"""Shared fixtures: make the project's module_utils and library importable and fake the dashboard's HTTP layer."""
from __future__ import annotations

import io
import json
import os
import sys
import urllib.error
from urllib.parse import parse_qsl, urlsplit

import ansible.module_utils
import pytest
from ansible.module_utils.common import warnings as ansible_warnings
from ansible.module_utils.testing import patch_module_args

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..'))
FIXTURES = os.path.join(os.path.dirname(__file__), 'fixtures')

# What ansible.cfg's `module_utils = ./module_utils` and `library = ./library` do for a playbook run.
if os.path.join(ROOT, 'module_utils') not in ansible.module_utils.__path__:
    ansible.module_utils.__path__.append(os.path.join(ROOT, 'module_utils'))
if os.path.join(ROOT, 'library') not in sys.path:
    sys.path.insert(0, os.path.join(ROOT, 'library'))


def load_fixture(name):
    with open(os.path.join(FIXTURES, name)) as f:
        return json.load(f)


class FakeResponse:
    def __init__(self, body, status=200):
        if isinstance(body, bytes):
            self._body, ctype = body, 'application/octet-stream'
        elif isinstance(body, str):
            self._body, ctype = body.encode(), 'text/plain'
        else:
            self._body, ctype = json.dumps(body).encode(), 'application/json'
        self.status = status
        self.headers = {'Content-Type': ctype}

    def read(self):
        return self._body

    def getcode(self):
        return self.status


def http_error(url, code, body='', reason='Error'):
    return urllib.error.HTTPError(url, code, reason, {'Content-Type': 'text/plain'}, io.BytesIO(body.encode()))


class FakeDashboard:
    """Stands in for open_url. routes maps 'METHOD /path' to an answer: a JSON-able value, a str (text), an exception,
    a callable(request) or a list of those (consumed in order, the last one repeats). Unknown routes answer 404."""

    def __init__(self):
        self.routes = {}
        self.requests = []

    def __call__(self, url, data=None, headers=None, method=None, **kwargs):
        parts = urlsplit(url)
        req = dict(method=method, url=url, path=parts.path, query=dict(parse_qsl(parts.query)), raw_query=parts.query,
                   headers=dict(headers or {}), body=json.loads(data) if data else None, kwargs=kwargs)
        self.requests.append(req)
        answer = self.routes.get('%s %s' % (method, parts.path))
        if answer is None:
            raise http_error(url, 404, '404: Not Found', 'Not Found')
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        if callable(answer) and not isinstance(answer, type):
            answer = answer(req)
        if isinstance(answer, BaseException):
            raise answer
        return answer if isinstance(answer, FakeResponse) else FakeResponse(answer)

    def calls(self, method, path):
        return [r for r in self.requests if r['method'] == method and r['path'] == path]


@pytest.fixture
def dashboard(monkeypatch):
    fake = FakeDashboard()
    monkeypatch.setattr('ansible.module_utils.ray_dashboard.open_url', fake)
    return fake


class FakeTime:
    """Replaces the module's `time`: sleep advances the clock instead of waiting."""

    def __init__(self):
        self.now = 1000.0
        self.sleeps = []

    def monotonic(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def install_fake_time(monkeypatch, module):
    clock = FakeTime()
    monkeypatch.setattr(module, 'time', clock)
    return clock


def module_runner(module, capsys, monkeypatch):
    """A function running module.main() with the given args; it returns the JSON result plus `rc` (exit code)."""
    def run(args):
        # AnsibleModule keeps warnings in process-wide storage; a real module run is a fresh process.
        monkeypatch.setattr(ansible_warnings, '_global_warnings', {})
        monkeypatch.setattr(ansible_warnings, '_global_deprecations', {})
        with patch_module_args(args), pytest.raises(SystemExit) as exc:
            module.main()
        result = json.loads(capsys.readouterr().out)
        result['rc'] = exc.value.code
        return result
    return run


@pytest.fixture
def fake_time(monkeypatch):
    import ray_cluster_health
    return install_fake_time(monkeypatch, ray_cluster_health)


@pytest.fixture
def run_module(capsys, monkeypatch):
    """Run ray_cluster_health.main() with the given args."""
    import ray_cluster_health
    return module_runner(ray_cluster_health, capsys, monkeypatch)
