"""ray_serve_app against answers recorded from Ray 2.60.0 (tests/unit/fixtures/recorded/ray-2.60.0-serve-*).

Answers built in code from a recorded one are named derived_*; the changes are spelt out where they are made."""
from __future__ import annotations

import copy
import json
import os
import urllib.error

import pytest
from ansible.module_utils.ray_dashboard import (
    RayDashboardClient,
    RayDashboardError,
    clean_message,
    normalize_serve_app,
    same_serve_app,
    serve_put_body,
)
from conftest import FIXTURES, http_error, install_fake_time, load_fixture, module_runner

URL = 'http://10.0.0.10:8265'
TOKEN = 'deadbeef' * 8
PATH = '/api/serve/applications/'
ANSI = '\x1b['
OMIT = object()


def rec(name):
    """A recorded GET answer, e.g. rec('running') for ray-2.60.0-serve-running.json."""
    return copy.deepcopy(load_fixture('recorded/ray-2.60.0-serve-%s.json' % name))


def app_config(answer_name, app):
    return rec(answer_name)['applications'][app]['deployed_app_config']


ECHO = app_config('running', 'echo')
BAD = app_config('bad-DEPLOY_FAILED', 'bad')
CRASH = app_config('crash-DEPLOY_FAILED-3', 'crash')
TOP_LEVEL = {k: rec('running')[k] for k in ('proxy_location', 'http_options', 'grpc_options')}


def without_name(cfg):
    return {k: v for k, v in cfg.items() if k != 'name'}


def echo_v2():
    cfg = copy.deepcopy(ECHO)
    cfg['args']['model_id'] = 'echo-v2'
    return cfg


def derived(answer, app, status=None, config=None, **fields):
    """Copy of a recorded answer with one application's status, deployed config or other fields replaced."""
    answer = copy.deepcopy(answer)
    entry = answer['applications'][app]
    if status:
        entry['status'] = status
    if config is not None:
        entry['deployed_app_config'] = copy.deepcopy(config)
    entry.update(fields)
    return answer


@pytest.fixture
def clock(monkeypatch):
    import ray_serve_app
    return install_fake_time(monkeypatch, ray_serve_app)


@pytest.fixture
def run(capsys, monkeypatch, clock):
    """Run ray_serve_app.main() with the given args; return its JSON result plus `rc`."""
    import ray_serve_app
    run_module = module_runner(ray_serve_app, capsys, monkeypatch)

    def run_(**kw):
        result = run_module(dict(dict(dashboard_url=URL, token=TOKEN, name='echo', interval=2), **kw))
        assert TOKEN not in json.dumps(result)  # whatever happened
        return result
    return run_


@pytest.fixture
def serve(dashboard):
    """GET answers are set per test (a list: one per GET, the last repeats); PUT answers 200 with an empty body."""
    dashboard.routes['PUT ' + PATH] = ''
    return dashboard


def puts(dashboard):
    return [r['body'] for r in dashboard.calls('PUT', PATH)]


# --- present ---------------------------------------------------------------------------------------------------------

def test_identical_config_sends_no_put(serve, run, clock):
    serve.routes['GET ' + PATH] = rec('running')
    r = run(config=without_name(ECHO))
    assert r['rc'] == 0 and r['changed'] is False and puts(serve) == []
    assert len(serve.calls('GET', PATH)) == 1 and clock.sleeps == []  # already RUNNING: no second read
    assert r['status'] == 'RUNNING' and r['route_prefix'] == '/' and r['terminal'] is False
    assert r['deployments'] == {'OpenAIEcho': {'status': 'HEALTHY', 'message': '', 'target_num_replicas': 1,
                                               'running_replicas': 1, 'replica_ids': ['rmuxoeo8']}}
    assert (r['replicas'], r['replica_ids'], r['proxies_healthy']) == (1, ['rmuxoeo8'], True)
    assert r['config'] == ECHO and r['deployed_config'] == ECHO and r['applications'] == ['echo']
    assert r['msg'] == 'Serve application echo is RUNNING with 1 replica'


def test_numbers_by_value_and_deployment_order_do_not_count(serve, run):
    # derived: echo deployed with a second deployment; the desired config lists them the other way round, as floats.
    second = {'name': 'Router', 'num_replicas': 2, 'user_config': {'verbose': True}}
    deployed = copy.deepcopy(ECHO)
    deployed['deployments'].append(second)
    serve.routes['GET ' + PATH] = derived(rec('running'), 'echo', config=deployed)
    desired = copy.deepcopy(deployed)
    desired['deployments'].reverse()
    desired['deployments'][1]['autoscaling_config'].update(target_ongoing_requests=5.0, downscale_delay_s=30.0)
    desired['deployments'][0]['num_replicas'] = 2.0
    r = run(config=desired)
    assert r['rc'] == 0 and r['changed'] is False and puts(serve) == []


@pytest.mark.parametrize('a, b, same', [
    ({'x': 5}, {'x': 5.0}, True),
    ({'x': {'y': [1, 2.0]}}, {'x': {'y': [1.0, 2]}}, True),
    ({'x': True}, {'x': 1}, False),  # user_config code may tell these apart
    ({'x': '5'}, {'x': 5}, False),
    ({'args': {'deployments': [1, 2]}}, {'args': {'deployments': [2, 1]}}, False),  # only the app's own list is keyed
    ({'x': [1, 2]}, {'x': [2, 1]}, False),
    ({'deployments': [{'name': 'A'}, {'name': 'B', 'n': 1}]}, {'deployments': [{'name': 'B', 'n': 1.0}, {'name': 'A'}]}, True),
    ({'deployments': [{'name': 'A'}]}, {'deployments': [{'name': 'A'}, {'name': 'B'}]}, False),
    (None, {}, True),
    ({'route_prefix': None}, {}, False),
])
def test_same_serve_app(a, b, same):
    assert same_serve_app(a, b) is same


def test_normalize_keys_deployments_by_name():
    assert normalize_serve_app(ECHO)['deployments'] == {'OpenAIEcho': ECHO['deployments'][0]}


def test_changed_config_is_one_put_that_keeps_the_others(serve, run, clock):
    before = rec('bad-DEPLOY_FAILED')  # echo RUNNING, then bad DEPLOY_FAILED
    serve.routes['GET ' + PATH] = [before, derived(before, 'echo', status='DEPLOYING', config=echo_v2())]
    r = run(config=echo_v2(), wait=False)
    assert r['rc'] == 0 and r['changed'] is True
    assert puts(serve) == [dict(TOP_LEVEL, applications=[echo_v2(), BAD])]  # echo replaced in place, bad untouched
    assert 'target_capacity' not in puts(serve)[0]  # null in the GET: left out
    assert r['status'] == 'DEPLOYING' and r['deployed_config'] == echo_v2() and r['applications'] == ['echo', 'bad']
    assert clock.sleeps == []
    req = serve.calls('PUT', PATH)[0]
    assert req['headers']['Authorization'] == 'Bearer ' + TOKEN and req['headers']['Content-Type'] == 'application/json'
    assert 'Mozilla' not in req['headers']['User-Agent'] and req['url'] == URL + PATH


def test_replaces_in_place_and_appends_new_apps():
    answer = rec('bad-DEPLOY_FAILED')
    import ray_serve_app
    new_bad = dict(BAD, import_path='fixed:app')
    assert ray_serve_app.build_body(answer, 'bad', new_bad)['applications'] == [ECHO, new_bad]
    assert ray_serve_app.build_body(answer, 'new', CRASH)['applications'] == [ECHO, BAD, CRASH]
    assert ray_serve_app.build_body(answer, 'echo', None)['applications'] == [BAD]


def test_target_capacity_kept_when_set():
    answer = rec('running')
    answer['target_capacity'] = 50  # derived: Ray reports null unless set
    assert serve_put_body(answer, [ECHO]) == dict(TOP_LEVEL, target_capacity=50, applications=[ECHO])


def test_app_being_deleted_is_left_out_of_the_put(serve, run):
    # Recorded: right after a PUT without `bad`, Ray lists it as DELETING with deployed_app_config null.
    answer = rec('crash-DEPLOYING-1')
    assert answer['applications']['bad'] == dict(answer['applications']['bad'], status='DELETING', deployed_app_config=None)
    serve.routes['GET ' + PATH] = answer
    r = run(name='new', config={'import_path': 'x:app', 'route_prefix': '/new'}, wait=False)
    assert r['rc'] == 0 and r['changed'] is True
    assert [a['name'] for a in puts(serve)[0]['applications']] == ['echo', 'crash', 'new']
    assert r['applications'] == ['echo', 'crash']  # from the (recorded) read after the PUT; bad is DELETING


def test_app_without_deployed_config_is_never_dropped(serve, run):
    # derived: an application deployed with serve.run() has no deployed_app_config.
    serve.routes['GET ' + PATH] = derived(rec('running'), 'echo', config=None, deployed_app_config=None, source='imperative')
    r = run(name='new', config={'import_path': 'x:app'}, _ansible_check_mode=True)
    assert r['failed'] and 'Serve application echo has no deployed_app_config' in r['msg'] and puts(serve) == []
    r = run(name='new', config={'import_path': 'x:app'})
    assert r['failed'] and puts(serve) == []


def test_first_app_before_serve_ever_started(serve, run):
    # derived: the shape of the answer before Serve started (controller_info {}, no top-level settings).
    serve.routes['GET ' + PATH] = [{'controller_info': {}}, derived(rec('running'), 'echo', status='DEPLOYING')]
    r = run(config=without_name(ECHO), wait=False, _ansible_diff=True)
    assert r['rc'] == 0 and r['changed'] is True
    assert puts(serve) == [{'applications': [ECHO]}]
    assert r['diff'] == {'before': {}, 'after': ECHO, 'before_header': 'Serve application echo (deployed)',
                         'after_header': 'Serve application echo (desired)'}


def test_http_port_goes_with_the_put_that_starts_serve(serve, run):
    serve.routes['GET ' + PATH] = [{'controller_info': {}}, derived(rec('running'), 'echo', status='DEPLOYING')]
    r = run(config=without_name(ECHO), wait=False, http_port=8001)
    assert r['rc'] == 0 and r['changed'] is True
    assert puts(serve) == [{'http_options': {'port': 8001}, 'applications': [ECHO]}]


def test_http_port_of_a_running_serve_is_kept(serve, run):
    # The recorded answer: Serve runs on 8000. Another application goes in with Serve's own settings.
    serve.routes['GET ' + PATH] = rec('running')
    r = run(name='new', config={'import_path': 'x:app'}, wait=False, http_port=8000)
    assert r['rc'] == 0 and r['changed'] is True
    assert puts(serve)[0]['http_options'] == rec('running')['http_options']


@pytest.mark.parametrize('check_mode', [False, True])
def test_http_port_other_than_the_running_one_fails_before_any_put(serve, run, check_mode):
    serve.routes['GET ' + PATH] = rec('running')
    r = run(config=without_name(ECHO), http_port=8001, _ansible_check_mode=check_mode)
    assert r['failed'] and puts(serve) == []
    assert "Serve's proxies listen on port 8000, not on http_port 8001" in r['msg']
    assert 'ray_teardown_fresh=true' in r['msg']


def test_removing_an_app_ignores_the_http_port(serve, run):
    serve.routes['GET ' + PATH] = [rec('running'), {'controller_info': rec('running')['controller_info']}]
    r = run(state='absent', http_port=8001)
    assert r['rc'] == 0 and r['changed'] is True


# --- waiting ----------------------------------------------------------------------------------------------------------

def test_wait_never_trusts_the_old_status(serve, run, clock):
    running = rec('running')
    serve.routes['GET ' + PATH] = [
        running,  # the read before the PUT
        running,  # after the PUT Ray still shows the old config, RUNNING: not ours
        derived(running, 'echo', status='DEPLOYING', config=echo_v2()),
        derived(running, 'echo', config=echo_v2()),
    ]
    r = run(config=echo_v2())
    assert r['rc'] == 0 and r['changed'] is True and len(puts(serve)) == 1
    assert len(serve.calls('GET', PATH)) == 4 and clock.sleeps == [2, 2] and r['elapsed'] == 4
    assert r['status'] == 'RUNNING' and r['deployed_config'] == echo_v2()


def test_wait_ignores_an_old_deploy_failed(serve, run, clock):
    failed = rec('bad-DEPLOY_FAILED')
    fixed = dict(BAD, import_path='openai_echo:app_builder')
    serve.routes['GET ' + PATH] = [failed, failed, derived(failed, 'bad', status='RUNNING', config=fixed, message='')]
    r = run(name='bad', config=fixed)
    assert r['rc'] == 0 and r['status'] == 'RUNNING' and r['terminal'] is False and clock.sleeps == [2]


def test_import_error_fails_at_once_with_ray_message(serve, run, clock):
    serve.routes['GET ' + PATH] = [rec('running'), rec('bad-DEPLOYING'), rec('bad-DEPLOY_FAILED')]
    r = run(name='bad', config=without_name(BAD), wait_timeout=600)
    assert r['failed'] and r['terminal'] is True and r['changed'] is True and clock.sleeps == [2]
    assert puts(serve)[0]['applications'] == [ECHO, BAD]
    assert r['msg'].startswith("Serve application bad is DEPLOY_FAILED:\nDeploying app 'bad' failed with exception:\n")
    assert r['msg'].endswith("ModuleNotFoundError: No module named 'no_such_module'")
    assert ANSI not in r['msg'] and ANSI not in r['message'] and '^^^' not in r['msg']
    assert '[... 12 lines cut ...]' in r['msg'] and len(r['msg'].splitlines()) <= 20
    assert r['status'] == 'DEPLOY_FAILED' and r['deployments'] == {} and r['applications'] == ['echo', 'bad']


def test_constructor_crash_fails_with_deployment_message(serve, run, clock):
    # The recorded crash run came from a PUT that also dropped `bad`, hence bad DELETING in the first read.
    serve.routes['GET ' + PATH] = [rec('running'), rec('crash-DEPLOYING-1'), rec('crash-DEPLOYING-2'), rec('crash-DEPLOY_FAILED-3')]
    r = run(name='crash', config=without_name(CRASH))
    assert r['failed'] and r['terminal'] is True and clock.sleeps == [2, 2]
    lines = r['msg'].splitlines()
    assert lines[:3] == ['Serve application crash is DEPLOY_FAILED:', "Failed to update the deployments ['Crash'].",
                         'deployment Crash is DEPLOY_FAILED (0 of 1 replicas running): The deployment failed to start 3 '
                         'times in a row. This may be due to a problem with its constructor or initial health check '
                         'failing. See controller logs for details. Error:']
    assert lines[-1] == 'RuntimeError: model weights not found at /nowhere'
    assert ANSI not in r['msg'] and 'ray::ServeReplica' not in r['msg']  # the coloured line is in the cut part
    assert r['deployments']['Crash']['status'] == 'DEPLOY_FAILED' and r['deployments']['Crash']['replica_ids'] == []
    assert 'model weights not found at /nowhere' in r['deployments']['Crash']['message']
    assert r['proxies_healthy'] is True  # the DRAINING proxy of 172.18.0.3 is on its way out


def test_failed_deployment_fails_before_the_app_says_so(serve, run, clock):
    # derived: the deployment already DEPLOY_FAILED (message from the recorded crash) while the app is still DEPLOYING.
    answer = rec('crash-DEPLOYING-2')
    answer['applications']['crash']['deployments']['Crash'] = rec('crash-DEPLOY_FAILED-3')['applications']['crash']['deployments']['Crash']
    serve.routes['GET ' + PATH] = [rec('running'), answer]
    r = run(name='crash', config=without_name(CRASH))
    assert r['failed'] and r['terminal'] is True and clock.sleeps == []
    assert r['msg'].startswith('Serve application crash is DEPLOYING:\ndeployment Crash is DEPLOY_FAILED')
    assert r['msg'].endswith('model weights not found at /nowhere')


def test_identical_but_failed_app_still_fails(serve, run):
    serve.routes['GET ' + PATH] = rec('bad-DEPLOY_FAILED')
    r = run(name='bad', config=without_name(BAD))
    assert r['failed'] and r['changed'] is False and r['terminal'] is True and puts(serve) == []
    assert "No module named 'no_such_module'" in r['msg']


def test_wait_false_reports_without_judging(serve, run):
    serve.routes['GET ' + PATH] = rec('bad-DEPLOY_FAILED')
    r = run(name='bad', config=without_name(BAD), wait=False)
    assert r['rc'] == 0 and r['changed'] is False and r['status'] == 'DEPLOY_FAILED'
    assert "No module named 'no_such_module'" in r['message'] and ANSI not in r['message']


def test_timeout_names_last_status(serve, run, clock):
    serve.routes['GET ' + PATH] = [rec('running'), rec('crash-DEPLOYING-2')]
    r = run(name='crash', config=without_name(CRASH), wait_timeout=5)
    assert r['failed'] and r['terminal'] is False and clock.sleeps == [2, 2, 1]
    assert r['msg'] == ('Serve application crash not ready after 5s (wait_timeout) at %s: status DEPLOYING\n'
                        'deployment Crash is UPDATING (0 of 1 replicas running)' % URL)
    assert r['status'] == 'DEPLOYING' and r['deployments']['Crash']['target_num_replicas'] == 1


def test_waits_for_every_proxy(serve, run, clock):
    starting = rec('running')
    starting['proxies']['babc39d6215f724fcb44608c63056d6d4b0a89957d9ebe85f6fced7d']['status'] = 'STARTING'  # derived
    serve.routes['GET ' + PATH] = [starting, rec('running')]
    r = run(config=without_name(ECHO))
    assert r['rc'] == 0 and r['changed'] is False and clock.sleeps == [2] and r['proxies_healthy'] is True

    serve.routes['GET ' + PATH] = starting
    r = run(config=without_name(ECHO), wait_timeout=2)
    assert r['failed'] and 'proxy on 172.18.0.4 is STARTING' in r['msg'] and r['proxies_healthy'] is False


def test_dashboard_hiccup_while_waiting(serve, run, clock):
    serve.routes['GET ' + PATH] = [rec('running'), http_error(URL + PATH, 503, 'Serve controller not ready'),
                                   derived(rec('running'), 'echo', config=echo_v2())]
    r = run(config=echo_v2())
    assert r['rc'] == 0 and clock.sleeps == [2] and r['status'] == 'RUNNING'


def test_dashboard_gone_after_the_put(serve, run, clock):
    down = urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused'))
    serve.routes['GET ' + PATH] = [rec('running'), down]
    r = run(config=echo_v2(), wait_timeout=3)
    assert r['failed'] and r['changed'] is True and clock.sleeps == [2, 1] and 'status' not in r
    assert r['msg'] == ('Serve application echo: no answer from the Ray dashboard at %s within 3s (wait_timeout): '
                        'cannot reach the Ray dashboard at %s: [Errno 111] Connection refused' % (URL, URL))

    serve.routes['GET ' + PATH] = [rec('running'), derived(rec('running'), 'echo', status='DEPLOYING', config=echo_v2()), down]
    r = run(config=echo_v2(), wait_timeout=3)
    assert r['failed'] and r['status'] == 'DEPLOYING'  # the last answer that came
    assert r['msg'].endswith('status DEPLOYING\ncannot reach the Ray dashboard at %s: [Errno 111] Connection refused' % URL)


# --- absent -----------------------------------------------------------------------------------------------------------

def test_absent_removes_only_that_app(serve, run, clock):
    serve.routes['GET ' + PATH] = [rec('bad-DEPLOY_FAILED'), derived(rec('bad-DEPLOY_FAILED'), 'bad', status='DELETING'),
                                   rec('running')]
    r = run(name='bad', state='absent', _ansible_diff=True)
    assert r['rc'] == 0 and r['changed'] is True and clock.sleeps == [2]
    assert puts(serve) == [dict(TOP_LEVEL, applications=[ECHO])]
    assert r['applications'] == ['echo'] and r['status'] is None and r['deployed_config'] is None and r['config'] is None
    assert r['diff']['before'] == BAD and r['diff']['after'] == {} and r['diff']['after_header'] == 'Serve application bad (removed)'
    assert r['msg'] == 'Serve application bad removed'


def test_absent_last_app_puts_an_empty_list(serve, run):
    serve.routes['GET ' + PATH] = [rec('running'), rec('empty-after-put')]
    r = run(state='absent')
    assert r['rc'] == 0 and r['changed'] is True and r['applications'] == []
    assert puts(serve) == [dict(TOP_LEVEL, applications=[])]


def test_absent_of_missing_app_only_reads(serve, run):
    serve.routes['GET ' + PATH] = rec('running')
    r = run(name='nope', state='absent', _ansible_diff=True)
    assert r['rc'] == 0 and r['changed'] is False and r['msg'] == 'Serve application nope not deployed'
    assert [(q['method'], q['path']) for q in serve.requests] == [('GET', PATH)]
    assert r['diff']['before'] == r['diff']['after'] == {}


def test_absent_wait_times_out(serve, run, clock):
    serve.routes['GET ' + PATH] = [rec('running'), derived(rec('running'), 'echo', status='DELETING')]
    r = run(state='absent', wait_timeout=4)
    assert r['failed'] and r['terminal'] is False and 'echo still present after 4s' in r['msg'] and 'DELETING' in r['msg']


# --- check mode -------------------------------------------------------------------------------------------------------

def test_check_mode_never_puts_and_returns_diff(serve, run, clock):
    serve.routes['GET ' + PATH] = rec('running')
    r = run(config=echo_v2(), _ansible_check_mode=True, _ansible_diff=True)
    assert r['rc'] == 0 and r['changed'] is True and puts(serve) == []
    assert len(serve.calls('GET', PATH)) == 1 and clock.sleeps == []  # no wait for a PUT that was not sent
    assert r['diff']['before'] == ECHO and r['diff']['after'] == echo_v2()
    assert r['deployed_config'] == ECHO and r['config'] == echo_v2()

    r = run(state='absent', _ansible_check_mode=True, _ansible_diff=True)
    assert r['changed'] is True and puts(serve) == [] and r['diff']['after'] == {} and r['applications'] == ['echo']


def test_check_mode_unchanged_still_checks(serve, run):
    serve.routes['GET ' + PATH] = rec('bad-DEPLOY_FAILED')
    r = run(name='bad', config=without_name(BAD), _ansible_check_mode=True)
    assert r['failed'] and r['terminal'] is True and puts(serve) == []


# --- input ------------------------------------------------------------------------------------------------------------

FULL_SERVE_YAML = '''
proxy_location: HeadOnly   # top-level settings of the file are not used
http_options: {host: 127.0.0.1, port: 9999}
applications:
  - name: other
    import_path: other:app
    route_prefix: /other
  - name: echo
    route_prefix: /
    import_path: openai_echo:app_builder
    runtime_env: {working_dir: "file:///tmp/openai_echo.zip"}
    deployments:
      - name: OpenAIEcho
        autoscaling_config: {min_replicas: 1, max_replicas: 2, target_ongoing_requests: 5.0, upscale_delay_s: 5, downscale_delay_s: 30}
    args: {model_id: echo-cpu}
'''


def test_config_file_full_serve_config_yaml(serve, run, tmp_path):
    path = tmp_path / 'serve.yaml'
    path.write_text(FULL_SERVE_YAML)
    serve.routes['GET ' + PATH] = rec('running')
    r = run(config_file=str(path))
    assert r['rc'] == 0 and r['changed'] is False and r['config'] == ECHO and puts(serve) == []

    r = run(name='missing', config_file=str(path))
    assert r['failed'] and r['msg'] == 'config_file %s has no application named missing; it has: other, echo' % path


def test_config_file_single_app_json(serve, run, tmp_path):
    path = tmp_path / 'crash.json'
    path.write_text(json.dumps(without_name(CRASH)))
    serve.routes['GET ' + PATH] = [rec('running'), rec('crash-DEPLOYING-2')]
    r = run(name='crash', config_file=str(path), wait=False)
    assert r['rc'] == 0 and r['changed'] is True and puts(serve)[0]['applications'] == [ECHO, CRASH]


@pytest.mark.parametrize('content, msg', [
    (None, 'cannot read config_file'),
    ('applications: [oops', 'is not valid YAML or JSON'),
    ('- just\n- a list\n', 'must hold a mapping'),
    ('{"name": "other", "import_path": "x:app"}', 'names the application other, but name is echo'),
])
def test_config_file_errors(serve, run, tmp_path, content, msg):
    path = tmp_path / 'app.yaml'
    if content is not None:
        path.write_text(content)
    r = run(config_file=str(path))
    assert r['failed'] and msg in r['msg'] and serve.requests == []


def test_name_mismatch_in_config(serve, run):
    r = run(config=dict(ECHO, name='other'))
    assert r['failed'] and r['msg'] == 'config names the application other, but name is echo' and serve.requests == []


@pytest.mark.parametrize('args, msg', [
    (dict(config=OMIT), 'state is present but any of the following are missing: config, config_file'),
    (dict(config=None), 'state=present needs config or config_file'),  # an explicit null passes required_if
    (dict(config_file='/x.yaml'), 'mutually exclusive'),
    (dict(interval=0), 'interval must be greater than 0'),
    (dict(wait_timeout=-1), 'wait_timeout must not be negative'),
    (dict(http_port=70000), 'http_port must be a TCP port (1-65535), got 70000'),
    (dict(dashboard_url='10.0.0.10:8265'), 'dashboard_url must start with http'),
    (dict(request_timeout=0), 'request_timeout must be greater than 0'),
    (dict(token_file='/nonexistent/ray_auth_token'), 'cannot read the Ray token file /nonexistent/ray_auth_token'),
])
def test_validation(serve, run, args, msg):
    r = run(**{k: v for k, v in dict(dict(config=without_name(ECHO)), **args).items() if v is not OMIT})
    assert r['failed'] and msg in r['msg'] and serve.requests == []


# --- errors -----------------------------------------------------------------------------------------------------------

def test_put_400_shows_ray_validation_text(serve, run):
    with open(os.path.join(FIXTURES, 'recorded', 'ray-2.60.0-serve-put-400.txt')) as f:
        body = f.read()
    serve.routes['GET ' + PATH] = rec('running')
    serve.routes['PUT ' + PATH] = http_error(URL + PATH, 400, body, 'Bad Request')
    r = run(name='neg', config={'import_path': 'x:app', 'deployments': [{'name': 'X', 'num_replicas': -3}]})
    assert r['failed'] and r['changed'] is True and r['terminal'] is False
    assert r['msg'].startswith('Ray rejected the Serve config (HTTP 400 on PUT %s%s; applications.0 is echo, '
                               'applications.1 is neg):\n2 validation errors for ServeDeploySchema\n' % (URL, PATH))
    assert '  Input should be greater than 0 [type=greater_than, input_value=-3, input_type=int]\n' in r['msg']
    assert r['msg'].endswith(body.strip().splitlines()[-1])


def test_unreachable_dashboard_names_url(serve, run):
    serve.routes['GET ' + PATH] = urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused'))
    r = run(config=without_name(ECHO))
    assert r['failed'] and r['msg'] == 'cannot reach the Ray dashboard at %s: [Errno 111] Connection refused' % URL
    assert puts(serve) == [] and 'status' not in r


def test_wrong_token_fails_at_once(serve, run, clock):
    serve.routes['GET ' + PATH] = [rec('running'), http_error(URL + PATH, 403, 'Forbidden ' + TOKEN)]
    r = run(config=echo_v2())
    assert r['failed'] and 'rejected the token' in r['msg'] and clock.sleeps == []


# --- client and helpers -----------------------------------------------------------------------------------------------

def test_client_serve_methods(dashboard):
    client = RayDashboardClient(URL, token=TOKEN)
    dashboard.routes['GET ' + PATH] = {'controller_info': {}}
    assert client.serve_applications() == {'controller_info': {}, 'applications': {}}
    dashboard.routes['PUT ' + PATH] = ''
    assert client.put_serve_applications({'applications': []}) is None
    assert dashboard.requests[-1]['body'] == {'applications': []}
    # The PUT waits for Serve's controller (slow on a fresh head); reads keep the client's timeout.
    assert dashboard.requests[-1]['kwargs']['timeout'] == 60
    assert dashboard.requests[-2]['kwargs']['timeout'] == 10
    dashboard.routes['GET ' + PATH] = 'Serve is not running'
    with pytest.raises(RayDashboardError, match='unexpected answer from the Ray dashboard at ' + URL):
        client.serve_applications()


def test_clean_message():
    msg = rec('crash-DEPLOY_FAILED-3')['applications']['crash']['deployments']['Crash']['message']
    assert ANSI in msg  # recorded with colours
    cleaned = clean_message(msg).splitlines()
    assert cleaned[0].startswith('The deployment failed to start 3 times in a row.')
    assert cleaned[1] == '[... 4 lines cut ...]' and len(cleaned) == 17
    assert not any(ANSI in line or set(line.strip()) <= {'^'} for line in cleaned)
    assert clean_message('\x1b[31mshort\x1b[0m\n') == 'short' and clean_message(None) == ''


def test_upscaling_deployment_counts_as_serving(serve, run):
    # Under load an autoscaling deployment reports UPSCALING while it serves; a deploy must not wait for the load to end.
    answer = rec('running')
    answer['applications']['echo']['deployments']['OpenAIEcho']['status'] = 'UPSCALING'
    serve.routes['GET ' + PATH] = [answer, answer]
    r = run(config=app_config('running', 'echo'))
    assert r['rc'] == 0 and r['changed'] is False and not puts(serve)
