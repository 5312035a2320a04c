from __future__ import annotations

import base64
import copy
import json
import re
import urllib.error

import pytest
from conftest import http_error, load_fixture

URL = 'http://10.0.0.10:8265'
TOKEN = 'c0ffee' * 10
SID = 'raysubmit_AbCdEf123456'
HEAD, W3, W4 = 'a1' * 28, 'c2' * 28, 'b3' * 28


def cluster(name='nodes_cpu.json', drop_ips=()):
    answer = copy.deepcopy(load_fixture(name))
    nodes = answer['data']['result']['result']
    nodes[:] = [n for n in nodes if n['node_ip'] not in drop_ips]
    answer['data']['result']['total'] = len(nodes)
    return answer


@pytest.fixture
def healthy(dashboard):
    dashboard.routes['GET /api/gcs_healthz'] = 'success'
    dashboard.routes['GET /api/v0/nodes'] = cluster()
    return dashboard


def args(**kw):
    return dict(dict(dashboard_url=URL, token=TOKEN), **kw)


def test_healthy_cluster(healthy, run_module, fake_time):
    r = run_module(args(min_nodes=3, min_cpus=5, exact_gpus=0))
    assert r['rc'] == 0 and not r.get('failed') and r['changed'] is False
    assert r['summary'] == [
        'head    172.18.0.2  CPU 1  GPU 0  object store 256 MiB',
        'worker  172.18.0.3  CPU 2  GPU 0  object store 256 MiB',
        'worker  172.18.0.4  CPU 2  GPU 0  object store 256 MiB',
        '3 nodes alive: 3 CPU hosts, 0 GPU hosts, 3 object-store hosts; 5 CPUs, 0 GPUs',
    ]
    assert r['msg'] == r['summary'][-1]
    assert r['totals'] == {'nodes': 3, 'cpus': 5, 'gpus': 0, 'object_store_memory_bytes': 3 * 256 * 2 ** 20}
    assert (r['cpu_hosts'], r['gpu_hosts'], r['object_store_hosts'], r['gcs_healthy']) == (3, 0, 3, True)
    head = r['nodes'][0]
    assert head['node_id'] == HEAD and head['is_head'] is True and head['cpus'] == 1 and head['memory_bytes'] == 2 ** 31
    assert head['resources']['node:__internal_head__'] == 1.0
    assert [n['node_ip'] for n in r['nodes']] == ['172.18.0.2', '172.18.0.3', '172.18.0.4']
    assert 'probe' not in r and r['elapsed'] == 0 and fake_time.sleeps == []
    assert TOKEN not in json.dumps(r)
    assert all(req['headers']['Authorization'] == 'Bearer ' + TOKEN for req in healthy.calls('GET', '/api/v0/nodes'))


def test_check_mode(healthy, run_module):
    r = run_module(args(min_nodes=3, _ansible_check_mode=True))
    assert r['rc'] == 0 and r['changed'] is False and r['totals']['nodes'] == 3


def test_token_from_environment(healthy, run_module, monkeypatch):
    monkeypatch.setenv('RAY_AUTH_TOKEN', 'from-env')
    assert run_module(dict(dashboard_url=URL))['rc'] == 0
    assert healthy.calls('GET', '/api/v0/nodes')[0]['headers']['Authorization'] == 'Bearer from-env'


def test_token_from_file_wins_over_environment(healthy, run_module, monkeypatch, tmp_path):
    monkeypatch.setenv('RAY_AUTH_TOKEN', 'from-env')
    token_file = tmp_path / 'ray_auth_token'
    token_file.write_text(TOKEN + '\n')
    r = run_module(dict(dashboard_url=URL, token_file=str(token_file)))
    assert r['rc'] == 0 and TOKEN not in json.dumps(r)
    assert healthy.calls('GET', '/api/v0/nodes')[0]['headers']['Authorization'] == 'Bearer ' + TOKEN


@pytest.mark.parametrize('content', [None, '\n'], ids=['missing', 'empty'])
def test_token_file_missing_or_empty_fails_before_any_request(healthy, run_module, tmp_path, content):
    token_file = tmp_path / 'ray_auth_token'
    if content is not None:
        token_file.write_text(content)
    r = run_module(dict(dashboard_url=URL, token_file=str(token_file)))
    assert r['failed'] and str(token_file) in r['msg'] and healthy.requests == []
    assert ('is empty' if content else 'No such file or directory') in r['msg']


def test_min_nodes_unmet_names_what_is_missing(healthy, run_module, fake_time):
    healthy.routes['GET /api/v0/nodes'] = cluster(drop_ips=['172.18.0.4'])
    r = run_module(args(min_nodes=3))
    assert r['failed'] and r['rc'] == 1
    assert 'expected at least 3 alive nodes, found 2 (head 172.18.0.2, worker 172.18.0.3)' in r['msg']
    assert r['msg'].startswith('Ray cluster at %s not ready: ' % URL)
    assert r['totals']['nodes'] == 2 and len(r['summary']) == 3


def test_exact_gpus_mismatch(healthy, run_module):
    r = run_module(args(exact_gpus=2))
    assert r['failed'] and 'expected exactly 2 GPUs, found 0' in r['msg']


def test_gpu_cluster(healthy, run_module):
    healthy.routes['GET /api/v0/nodes'] = cluster('nodes_gpu.json')
    r = run_module(args(min_nodes=3, exact_gpus=2))
    assert r['rc'] == 0 and r['gpu_hosts'] == 2 and r['totals']['gpus'] == 2
    assert r['summary'][1] == 'worker  172.18.0.3  CPU 2  GPU 1  object store 256 MiB'
    assert r['msg'] == '3 nodes alive: 3 CPU hosts, 2 GPU hosts, 3 object-store hosts; 5 CPUs, 2 GPUs'
    r = run_module(args(min_gpus=3))
    assert r['failed'] and 'expected at least 3 GPUs, found 2' in r['msg']


def test_min_cpus(healthy, run_module):
    assert run_module(args(min_cpus=5))['rc'] == 0
    r = run_module(args(min_cpus=5.5))
    assert r['failed'] and 'expected at least 5.5 CPUs, found 5' in r['msg']


def test_gcs_not_healthy(healthy, run_module):
    healthy.routes['GET /api/gcs_healthz'] = http_error(URL + '/api/gcs_healthz', 503, 'GCS down')
    r = run_module(args())
    assert r['failed'] and 'GCS is not healthy' in r['msg'] and r['gcs_healthy'] is False


def test_wait_succeeds_on_later_poll(healthy, run_module, fake_time):
    healthy.routes['GET /api/v0/nodes'] = [
        urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused')),  # head still starting
        cluster(drop_ips=['172.18.0.3', '172.18.0.4']),
        cluster(drop_ips=['172.18.0.4']),
        cluster(),
    ]
    r = run_module(args(min_nodes=3, wait_timeout=60, interval=5))
    assert r['rc'] == 0 and r['totals']['nodes'] == 3
    assert fake_time.sleeps == [5, 5, 5] and r['elapsed'] == 15
    assert len(healthy.calls('GET', '/api/v0/nodes')) == 4


def test_wait_times_out(healthy, run_module, fake_time):
    healthy.routes['GET /api/v0/nodes'] = cluster(drop_ips=['172.18.0.4'])
    r = run_module(args(min_nodes=3, wait_timeout=5, interval=2))
    assert r['failed'] and fake_time.sleeps == [2, 2, 1]
    assert r['msg'] == ('Ray cluster at %s not ready after 5s: expected at least 3 alive nodes, found 2 '
                        '(head 172.18.0.2, worker 172.18.0.3)' % URL)


def test_unreachable_dashboard_names_address(dashboard, run_module, fake_time):
    dashboard.routes['GET /api/gcs_healthz'] = urllib.error.URLError(ConnectionRefusedError(111, 'Connection refused'))
    r = run_module(args(dashboard_url='http://10.9.9.9:8265', wait_timeout=10, interval=3))
    assert r['failed'] and len(fake_time.sleeps) == 4
    assert 'cannot reach the Ray dashboard at http://10.9.9.9:8265: [Errno 111] Connection refused' in r['msg']
    assert 'nodes' not in r


def test_auth_failure_fails_at_once(dashboard, run_module, fake_time):
    dashboard.routes['GET /api/gcs_healthz'] = 'success'
    dashboard.routes['GET /api/v0/nodes'] = http_error(URL + '/api/v0/nodes', 403, 'Forbidden')
    r = run_module(args(wait_timeout=300))
    assert r['failed'] and 'rejected the token' in r['msg'] and URL in r['msg'] and fake_time.sleeps == []
    assert TOKEN not in json.dumps(r)


@pytest.mark.parametrize('bad, msg', [
    (dict(min_nodes=-1), 'min_nodes must not be negative'),
    (dict(exact_gpus=-0.5), 'exact_gpus must not be negative'),
    (dict(interval=0), 'interval must be greater than 0'),
    (dict(min_gpus=1, exact_gpus=1), 'mutually exclusive'),
    (dict(dashboard_url='10.0.0.10:8265'), 'dashboard_url must start with http'),
])
def test_validation(dashboard, run_module, bad, msg):
    r = run_module(args(**bad))
    assert r['failed'] and msg in r['msg'] and dashboard.requests == []


# --- probe ------------------------------------------------------------------------------------------------------------

def probe_line(results):
    return 'RAY_CLUSTER_PROBE ' + json.dumps(results, sort_keys=True)


def ok(node_id, host):
    return {'node_id': node_id, 'hostname': host, 'pid': 42, 'python': '3.12.9', 'ray': '2.60.0'}


class FakeJob:
    """One submitted job: answers the given statuses in order (the last repeats) until deleted, then 404."""

    def __init__(self, statuses, logs=''):
        self.statuses, self.logs = list(statuses), logs
        self.deletes = 0

    def info(self, req):
        if self.deletes:
            return http_error(req['url'], 404, 'Job %s does not exist' % SID, 'Not Found')
        status = self.statuses.pop(0) if len(self.statuses) > 1 else self.statuses[0]
        return {'status': status, 'message': 'Job is %s.' % status.lower()}

    def delete(self, req):
        self.deletes += 1
        return {'deleted': True}


@pytest.fixture
def job():
    return FakeJob(['PENDING', 'RUNNING', 'SUCCEEDED'])


@pytest.fixture
def jobs(healthy, job):
    healthy.routes.update({
        'POST /api/jobs/': load_fixture('job_submit.json'),
        'GET /api/jobs/' + SID: job.info,
        'GET /api/jobs/%s/logs' % SID: lambda req: {'logs': job.logs},
        'DELETE /api/jobs/' + SID: job.delete,
        'POST /api/jobs/%s/stop' % SID: {'stopped': True},
        # A callable: a plain list would be taken as a sequence of answers.
        'GET /api/jobs/': lambda req: [],
    })
    return healthy


def submitted_script(dashboard):
    body = dashboard.calls('POST', '/api/jobs/')[0]['body']
    m = re.fullmatch(r'''python -c "import base64;exec\(base64\.b64decode\('([A-Za-z0-9+/=]+)'\)\)"''', body['entrypoint'])
    assert m, body['entrypoint']
    return body, base64.b64decode(m.group(1)).decode()


def test_probe_success(jobs, job, run_module, fake_time):
    job.logs = 'some ray noise\n' + probe_line({HEAD: ok(HEAD, 'ray-head'), W3: ok(W3, 'ray-worker-1'), W4: ok(W4, 'ray-worker-2')}) + '\n'
    r = run_module(args(min_nodes=3, probe=True))
    assert r['rc'] == 0 and r['changed'] is False
    assert [(p['node_ip'], p['ok'], p['hostname']) for p in r['probe']] == [
        ('172.18.0.2', True, 'ray-head'), ('172.18.0.3', True, 'ray-worker-1'), ('172.18.0.4', True, 'ray-worker-2')]
    assert r['probe'][0]['ray'] == '2.60.0' and r['probe'][0]['error'] is None
    body, script = submitted_script(jobs)
    assert 'runtime_env' not in body and 'ray_cluster_health' in body['metadata']['submitted_by']
    compile(script, 'probe', 'exec')
    for needle in ('ray.init(address="auto"', 'ray.nodes()', 'num_cpus=0', 'NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)',
                   'RAY_CLUSTER_PROBE', 'timeout=90'):
        assert needle in script
    # This run's job stays (Ray would bring it back if deleted right after it finished).
    assert job.deletes == 0 and jobs.calls('POST', '/api/jobs/%s/stop' % SID) == []
    assert not r.get('warnings')


def test_probe_deletes_finished_probe_jobs_of_earlier_runs(jobs, job, run_module, fake_time):
    job.logs = probe_line({HEAD: ok(HEAD, 'h'), W3: ok(W3, 'a'), W4: ok(W4, 'b')})
    marker = {'submitted_by': 'ansible ray_cluster_health'}
    jobs.routes['GET /api/jobs/'] = lambda req: [
        {'submission_id': 'raysubmit_old1', 'status': 'SUCCEEDED', 'metadata': marker},
        {'submission_id': 'raysubmit_old2', 'status': 'FAILED', 'metadata': marker},
        {'submission_id': 'raysubmit_live', 'status': 'RUNNING', 'metadata': marker},
        {'submission_id': 'raysubmit_user', 'status': 'SUCCEEDED', 'metadata': {'owner': 'someone'}},
    ]
    jobs.routes['DELETE /api/jobs/raysubmit_old1'] = {'deleted': True}
    jobs.routes['DELETE /api/jobs/raysubmit_old2'] = {'deleted': True}
    r = run_module(args(probe=True))
    assert r['rc'] == 0 and not r.get('warnings')
    deleted = [c['path'] for c in jobs.requests if c['method'] == 'DELETE']
    assert deleted == ['/api/jobs/raysubmit_old1', '/api/jobs/raysubmit_old2']


def test_probe_failure_names_node_ip(jobs, job, run_module, fake_time):
    job.logs = probe_line({HEAD: ok(HEAD, 'ray-head'), W3: {'error': 'no answer within 90 s'}})
    r = run_module(args(probe=True))
    assert r['failed']
    assert 'probe failed on worker 172.18.0.3: no answer within 90 s' in r['msg']
    assert 'probe failed on worker 172.18.0.4: no result from this node' in r['msg']
    assert [p['ok'] for p in r['probe']] == [True, False, False]


def test_probe_without_result_line(jobs, job, run_module, fake_time):
    jobs.routes['GET /api/jobs/' + SID] = {'status': 'FAILED', 'message': 'Job entrypoint command failed with exit code 1'}
    job.logs = 'Traceback ...\nModuleNotFoundError: No module named ray\n'
    r = run_module(args(probe=True))
    assert r['failed'] and 'probe' not in r
    assert 'ended FAILED without a RAY_CLUSTER_PROBE line: Job entrypoint command failed with exit code 1' in r['msg']
    assert 'No module named ray' in r['msg']


def test_probe_timeout_stops_job(jobs, job, run_module, fake_time):
    job.statuses = ['RUNNING'] * 32 + ['STOPPED']
    r = run_module(args(probe=True, probe_timeout=30))
    assert r['failed'] and 'did not finish within 30s (status RUNNING)' in r['msg']
    assert len(jobs.calls('POST', '/api/jobs/%s/stop' % SID)) == 1
    assert not r.get('warnings')


def test_probe_delete_failure_only_warns(jobs, job, run_module, fake_time):
    job.logs = probe_line({HEAD: ok(HEAD, 'h'), W3: ok(W3, 'a'), W4: ok(W4, 'b')})
    jobs.routes['GET /api/jobs/'] = lambda req: [{'submission_id': 'raysubmit_old1', 'status': 'SUCCEEDED',
                                                  'metadata': {'submitted_by': 'ansible ray_cluster_health'}}]
    jobs.routes['DELETE /api/jobs/raysubmit_old1'] = http_error(URL + '/api/jobs/raysubmit_old1', 400, 'job is not in a terminal state')
    r = run_module(args(probe=True))
    warnings = [w['event']['msg'] if isinstance(w, dict) else w for w in r.get('warnings', [])]  # 2.19 returns WarningSummary dicts
    assert r['rc'] == 0 and any('could not delete old probe jobs' in w for w in warnings)


def test_probe_skipped_when_cluster_not_ready(jobs, run_module):
    r = run_module(args(min_nodes=4, probe=True))
    assert r['failed'] and jobs.calls('POST', '/api/jobs/') == []


def test_recorded_ray_2_60_answer(dashboard, run_module, fake_time):
    """A real answer of Ray 2.60.0 (head + 2 CPU workers, token auth). Its
    `total` counts 5 nodes, dead ones from an earlier start included: only
    the alive list may be counted."""
    dashboard.routes['GET /api/gcs_healthz'] = 'success'
    dashboard.routes['GET /api/v0/nodes'] = load_fixture('recorded/ray-2.60.0-nodes-alive.json')
    r = run_module(args(min_nodes=3, min_cpus=5, exact_gpus=0))
    assert r['rc'] == 0 and not r.get('failed'), r
    assert r['totals']['nodes'] == 3 and r['totals']['cpus'] == 5 and r['totals']['gpus'] == 0
    assert r['summary'][0] == 'head    172.18.0.2  CPU 1  GPU 0  object store 256 MiB'
    assert r['summary'][-1] == '3 nodes alive: 3 CPU hosts, 0 GPU hosts, 3 object-store hosts; 5 CPUs, 0 GPUs'

    failed = run_module(args(min_nodes=4))
    assert failed['failed'] and 'expected at least 4 alive nodes, found 3' in failed['msg']


HOSTS = [dict(name='head01', address='172.18.0.2', nodes=1, gpus=0),
         dict(name='cpu01', address='172.18.0.3', nodes=1, cpus=2),
         dict(name='cpu02', address='172.18.0.4', nodes=1, cpus=2, gpus=0)]


def test_per_host_expectations_and_summary(healthy, run_module):
    r = run_module(args(min_nodes=3, hosts=HOSTS))
    assert r['rc'] == 0
    assert r['summary'][3:] == [
        'host head01  172.18.0.2  1/1 nodes  CPU 1  GPU 0/0',
        'host cpu01   172.18.0.3  1/1 nodes  CPU 2  GPU 0',
        'host cpu02   172.18.0.4  1/1 nodes  CPU 2  GPU 0/0',
        '3 nodes alive: 3 CPU hosts, 0 GPU hosts, 3 object-store hosts; 5 CPUs, 0 GPUs',
    ]
    assert r['msg'] == r['summary'][-1]
    assert [h['ok'] for h in r['hosts']] == [True, True, True]


def test_a_missing_host_is_named(healthy, run_module):
    healthy.routes['GET /api/v0/nodes'] = cluster(drop_ips=['172.18.0.4'])
    r = run_module(args(min_nodes=2, hosts=HOSTS))
    assert r['failed']
    assert 'cpu02 (172.18.0.4): expected at least 1 alive nodes, found 0' in r['msg']
    assert 'cpu02 (172.18.0.4): expected at least 2 CPUs, found 0' in r['msg']
    assert r['summary'][-2] == 'host cpu02   172.18.0.4  0/1 nodes  CPU 0  GPU 0/0  MISSING'


def test_per_host_gpus_are_exact(healthy, run_module):
    hosts = [dict(h, gpus=1) if h['name'] == 'cpu01' else h for h in HOSTS]
    r = run_module(args(hosts=hosts))
    assert r['failed'] and 'cpu01 (172.18.0.3): expected exactly 1 GPUs, found 0' in r['msg']
