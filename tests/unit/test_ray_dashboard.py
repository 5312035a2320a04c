from __future__ import annotations

import socket
import urllib.error

import pytest
from ansible.module_utils.ray_dashboard import RayDashboardClient, RayDashboardError, dashboard_argument_spec
from conftest import FakeResponse, http_error, load_fixture

URL = 'http://10.0.0.10:8265'
TOKEN = 'f00dfeedcafe' * 5


@pytest.fixture
def client():
    return RayDashboardClient(URL + '/', token=TOKEN + '\n')


def test_argument_spec():
    spec = dashboard_argument_spec()
    assert spec['dashboard_url']['default'] == 'http://127.0.0.1:8265'
    assert spec['token']['no_log'] is True
    assert spec['token']['fallback'][1] == ['RAY_AUTH_TOKEN']
    assert spec['validate_certs'] == dict(type='bool', default=True)
    assert spec['request_timeout'] == dict(type='float', default=10)
    assert spec['token_file'] == dict(type='path')


def test_headers_bearer_and_no_browser_headers(dashboard, client):
    dashboard.routes['POST /api/jobs/'] = {'job_id': 'x', 'submission_id': 'raysubmit_1'}
    assert client.submit_job('echo hi', metadata={'a': 1}) == 'raysubmit_1'
    req = dashboard.requests[0]
    h = req['headers']
    assert h['Authorization'] == 'Bearer ' + TOKEN  # token stripped of its newline
    assert h['User-Agent'] == 'ansible-ray-compose' and 'Mozilla' not in h['User-Agent']
    assert h['Accept'] == 'application/json'
    assert h['Content-Type'] == 'application/json'
    assert not [k for k in h if k.lower() in ('origin', 'referer') or k.lower().startswith('sec-fetch')]
    assert req['url'] == URL + '/api/jobs/'
    assert req['body'] == {'entrypoint': 'echo hi', 'metadata': {'a': '1'}}
    assert req['kwargs']['http_agent'] == 'ansible-ray-compose'
    assert req['kwargs']['use_netrc'] is False


def test_no_token_no_authorization_and_no_content_type_on_get(dashboard):
    dashboard.routes['GET /api/gcs_healthz'] = 'success'
    assert RayDashboardClient(URL).gcs_healthy() is True
    h = dashboard.requests[0]['headers']
    assert 'Authorization' not in h and 'Content-Type' not in h


def test_alive_nodes_query_and_parse(dashboard, client):
    dashboard.routes['GET /api/v0/nodes'] = load_fixture('nodes_cpu.json')
    nodes = client.alive_nodes()
    assert sorted(n['node_ip'] for n in nodes) == ['172.18.0.2', '172.18.0.3', '172.18.0.4']
    req = dashboard.requests[0]
    assert 'filter_predicates=%3D' in req['raw_query']
    assert req['query'] == {'filter_keys': 'state', 'filter_predicates': '=', 'filter_values': 'ALIVE', 'limit': '10000'}


def test_alive_nodes_error_envelope(dashboard, client):
    dashboard.routes['GET /api/v0/nodes'] = {'result': False, 'msg': 'state API timed out', 'data': {}}
    with pytest.raises(RayDashboardError, match='could not list nodes: state API timed out'):
        client.alive_nodes()


def test_alive_nodes_unexpected_shape(dashboard, client):
    dashboard.routes['GET /api/v0/nodes'] = {'result': True, 'data': {}}
    with pytest.raises(RayDashboardError, match='unexpected answer from the Ray dashboard at ' + URL):
        client.alive_nodes()


def test_gcs_unhealthy_on_http_error(dashboard, client):
    dashboard.routes['GET /api/gcs_healthz'] = http_error(URL + '/api/gcs_healthz', 503, 'GCS unreachable')
    assert client.gcs_healthy() is False


def test_401_without_token_says_how_to_give_one(dashboard):
    dashboard.routes['GET /api/v0/nodes'] = http_error(URL + '/api/v0/nodes', 401, 'Unauthorized')
    with pytest.raises(RayDashboardError) as exc:
        RayDashboardClient(URL).alive_nodes()
    msg = str(exc.value)
    assert URL in msg and 'requires a token' in msg and 'token option' in msg and 'RAY_AUTH_TOKEN' in msg
    assert exc.value.status == 401 and exc.value.auth_failed


def test_403_wrong_token_not_in_message(dashboard, client):
    dashboard.routes['GET /api/v0/nodes'] = http_error(URL + '/api/v0/nodes', 403, 'Forbidden: bad token ' + TOKEN)
    with pytest.raises(RayDashboardError) as exc:
        client.alive_nodes()
    msg = str(exc.value)
    assert URL in msg and 'rejected the token' in msg and TOKEN not in msg and TOKEN not in exc.value.body


def test_other_http_error_names_method_url_status_and_body(dashboard, client):
    body = 'Traceback (most recent call last):\n  boom ' + TOKEN + ' ' + 'x' * 1000
    dashboard.routes['GET /api/jobs/raysubmit_1'] = http_error(URL + '/api/jobs/raysubmit_1', 500, body, 'Internal Server Error')
    with pytest.raises(RayDashboardError) as exc:
        client.job_info('raysubmit_1')
    msg = str(exc.value)
    assert msg.startswith('GET %s/api/jobs/raysubmit_1 failed: HTTP 500 Internal Server Error: Traceback' % URL)
    assert TOKEN not in msg and '********' in msg and len(msg) < 500


@pytest.mark.parametrize('error, reason', [
    (urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused')), 'Connection refused'),
    (urllib.error.URLError(socket.gaierror(-2, 'Name or service not known')), 'Name or service not known'),
    (socket.timeout('timed out'), 'timed out'),
    (ConnectionResetError(104, 'Connection reset by peer'), 'Connection reset by peer'),
])
def test_unreachable_names_address(dashboard, client, error, reason):
    dashboard.routes['GET /api/v0/nodes'] = error
    with pytest.raises(RayDashboardError) as exc:
        client.alive_nodes()
    assert str(exc.value).startswith('cannot reach the Ray dashboard at %s: ' % URL)
    assert reason in str(exc.value) and exc.value.unreachable and TOKEN not in str(exc.value)


def test_gcs_healthy_unreachable_raises(dashboard, client):
    dashboard.routes['GET /api/gcs_healthz'] = urllib.error.URLError('timed out')
    with pytest.raises(RayDashboardError, match='cannot reach'):
        client.gcs_healthy()


def test_jobs_api(dashboard, client):
    dashboard.routes.update({
        'POST /api/jobs/': load_fixture('job_submit.json'),
        'GET /api/jobs/raysubmit_AbCdEf123456': {'status': 'RUNNING', 'message': 'Job is currently running.'},
        'GET /api/jobs/raysubmit_AbCdEf123456/logs': {'logs': 'hello\n'},
        'POST /api/jobs/raysubmit_AbCdEf123456/stop': {'stopped': True},
        'DELETE /api/jobs/raysubmit_AbCdEf123456': {'deleted': True},
    })
    sid = client.submit_job('python -c "print(1)"', runtime_env={'env_vars': {'A': '1'}}, entrypoint_num_cpus=0)
    assert sid == 'raysubmit_AbCdEf123456'
    assert dashboard.requests[0]['body'] == {'entrypoint': 'python -c "print(1)"', 'runtime_env': {'env_vars': {'A': '1'}}, 'entrypoint_num_cpus': 0}
    assert client.job_info(sid)['status'] == 'RUNNING'
    assert client.job_logs(sid) == 'hello\n'
    assert client.stop_job(sid) is True
    assert client.delete_job(sid) is True
    assert [r['method'] for r in dashboard.requests] == ['POST', 'GET', 'GET', 'POST', 'DELETE']


def test_request_text_and_empty_answers(dashboard, client):
    dashboard.routes['GET /api/text'] = 'plain words'
    dashboard.routes['PUT /api/empty'] = FakeResponse(b'')
    assert client.get('/api/text') == 'plain words'
    assert client.put('/api/empty', body={'a': 1}) is None
    assert client.get('api/text', query={'x': 'a b'}) == 'plain words'
    assert dashboard.requests[-1]['url'] == URL + '/api/text?x=a+b'
