"""ray_serve_info against answers recorded from Ray 2.60.0 (tests/unit/fixtures/recorded/ray-2.60.0-serve-*)."""
from __future__ import annotations

import copy
import json

import pytest
from conftest import http_error, load_fixture, module_runner

URL = 'http://10.0.0.10:8265'
TOKEN = 'c0ffee00' * 8
PATH = '/api/serve/applications/'


def rec(name):
    return copy.deepcopy(load_fixture('recorded/ray-2.60.0-serve-%s.json' % name))


@pytest.fixture
def run(capsys, monkeypatch, dashboard):
    import ray_serve_info
    runner = module_runner(ray_serve_info, capsys, monkeypatch)
    return lambda **args: runner(dict(dict(dashboard_url=URL, token=TOKEN), **args))


def test_lists_every_application_with_replicas_and_autoscaling(dashboard, run):
    dashboard.routes['GET ' + PATH] = rec('running')
    r = run(_ansible_check_mode=True)
    assert r['rc'] == 0 and r['changed'] is False and 'exists' not in r
    echo = r['applications']['echo']
    assert (echo['status'], echo['route_prefix'], echo['replicas']) == ('RUNNING', '/', 1)
    dep = echo['deployments']['OpenAIEcho']
    assert dep['replica_states'] == {'RUNNING': 1} and dep['running_replicas'] == 1
    assert (dep['autoscaling_config']['min_replicas'], dep['autoscaling_config']['max_replicas']) == (1, 2)
    assert r['proxies_healthy'] is True and r['msg'] == '1 Serve application: echo RUNNING'
    assert TOKEN not in json.dumps(r)
    assert dashboard.requests[0]['headers']['Authorization'] == 'Bearer ' + TOKEN
    assert [req['method'] for req in dashboard.requests] == ['GET']


def test_one_application_and_replica_states(dashboard, run):
    answer = rec('running')
    replicas = answer['applications']['echo']['deployments']['OpenAIEcho']['replicas']
    replicas += [dict(copy.deepcopy(replicas[0]), replica_id='stopping%d' % i, state='STOPPING') for i in (1, 2)]
    dashboard.routes['GET ' + PATH] = answer
    r = run(name='echo')
    assert r['exists'] is True and r['application'] == r['applications']['echo']
    dep = r['application']['deployments']['OpenAIEcho']
    assert dep['replica_states'] == {'RUNNING': 1, 'STOPPING': 2} and dep['running_replicas'] == 1


def test_missing_application(dashboard, run):
    answer = rec('bad-DEPLOY_FAILED')
    dashboard.routes['GET ' + PATH] = answer
    r = run(name='nothing-here')
    assert r['rc'] == 0 and r['exists'] is False and r['application'] is None
    assert r['applications']['bad']['status'] == 'DEPLOY_FAILED'


def test_deleting_application_does_not_exist(dashboard, run):
    answer = rec('running')
    answer['applications']['echo']['status'] = 'DELETING'
    dashboard.routes['GET ' + PATH] = answer
    assert run(name='echo')['exists'] is False


def test_wrong_token_fails_with_the_fix(dashboard, run):
    dashboard.routes['GET ' + PATH] = http_error(URL + PATH, 403, 'Forbidden')
    r = run(name='echo')
    assert r['failed'] and 'rejected the token' in r['msg'] and TOKEN not in json.dumps(r)


def test_bad_dashboard_url_fails_before_any_request(dashboard, run):
    r = run(dashboard_url='10.0.0.10:8265')
    assert r['failed'] and 'dashboard_url must start with http' in r['msg'] and dashboard.requests == []
