"""roles/ray_loadtest/files/loadtest_driver.py: event detection, locust history
parsing, and the run/poll/stop process handling (with stand-ins for locust
and the dashboard, so no locust and no Ray are needed)."""
from __future__ import annotations

import copy
import csv
import http.server
import importlib.util
import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time

import pytest

from conftest import ROOT, load_fixture

DRIVER = os.path.join(ROOT, 'roles', 'ray_loadtest', 'files', 'loadtest_driver.py')
_spec = importlib.util.spec_from_file_location('loadtest_driver', DRIVER)
drv = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(drv)

T0 = 1_800_000_000.0


def row(t, target, running, other=0):
    return {'time': T0 + t, 'target_replicas': target, 'running_replicas': running,
            'other_replicas': other}


def events(rows, load_end_after=60.0, mn=1, mx=2):
    return drv.detect_events(rows, mn, mx, T0, None if load_end_after is None else T0 + load_end_after)


# ---------------------------------------------------------------- detection

def test_scale_up_then_down():
    rows = [row(0, 1, 1), row(5, 1, 1), row(12, 2, 1, other=1), row(20, 2, 2),
            row(59, 2, 2), row(61, 2, 2), row(95, 1, 1, other=1), row(100, 1, 1)]
    ev = events(rows)
    assert ev == {'first_target_max': T0 + 12, 'first_running_max': T0 + 20,
                  'back_at_min': T0 + 100}


def test_never_scales():
    rows = [row(t, 1, 1) for t in range(0, 80, 5)]
    ev = events(rows)
    assert ev['first_target_max'] is None
    assert ev['first_running_max'] is None
    # The first sample at/after the end of the load, not one during it.
    assert ev['back_at_min'] == T0 + 60


def test_back_at_min_only_after_load_end():
    # At min during the load (before scaling up, and in a dip) does not count.
    rows = [row(0, 1, 1), row(10, 2, 2), row(30, 1, 1), row(40, 2, 2), row(70, 2, 2)]
    assert events(rows)['back_at_min'] is None
    assert events(rows + [row(90, 1, 1)])['back_at_min'] == T0 + 90


def test_back_at_min_is_none_while_load_runs():
    rows = [row(0, 1, 1), row(10, 1, 1)]
    assert events(rows, load_end_after=None)['back_at_min'] is None


def test_other_replicas_block_back_at_min():
    rows = [row(10, 2, 2), row(65, 1, 1, other=1), row(70, 1, 1, other=1), row(80, 1, 1)]
    assert events(rows)['back_at_min'] == T0 + 80


def test_target_at_min_but_running_not_yet():
    rows = [row(10, 2, 2), row(65, 1, 2), row(70, 1, 1)]
    assert events(rows)['back_at_min'] == T0 + 70


def test_rows_before_load_start_ignored():
    rows = [row(-5, 2, 2), row(0, 1, 1), row(10, 1, 1)]
    ev = events(rows)
    assert ev['first_target_max'] is None and ev['first_running_max'] is None


def test_unknown_target_is_not_max_nor_min():
    rows = [row(10, None, 0), row(70, None, 0)]
    assert events(rows) == {'first_target_max': None, 'first_running_max': None,
                            'back_at_min': None}


def test_events_record_relative_times():
    rows = [row(0, 1, 1), row(12, 2, 1), row(20, 2, 2), row(100, 1, 1)]
    rec = drv.events_record(rows, min_replicas=1, max_replicas=2, load_start=T0,
                            load_end=T0 + 60, aborted=False, reason='', locust_rc=0,
                            sample_errors=3)
    assert rec['first_target_max_s'] == 12.0
    assert rec['first_running_max_s'] == 20.0
    assert rec['back_at_min_s'] == 40.0
    assert rec['samples'] == 4 and rec['sample_errors'] == 3
    assert rec['aborted'] is False and rec['locust_rc'] == 0
    assert rec['at_min_at_start'] is True


def test_events_record_not_at_min_at_start():
    # A run that begins while the app still has max replicas (e.g. right
    # after an aborted run) "reaches" max at once: the record says so.
    rows = [row(-1, 1, 1), row(0.01, 2, 2), row(70, 1, 1)]
    rec = drv.events_record(rows, min_replicas=1, max_replicas=2, load_start=T0,
                            load_end=T0 + 60, aborted=False, reason='', locust_rc=0,
                            sample_errors=0)
    assert rec['first_running_max_s'] == 0.01 and rec['at_min_at_start'] is False
    assert drv.events_record([], min_replicas=1, max_replicas=2, load_start=T0, load_end=None,
                             aborted=True, reason='x', locust_rc=None,
                             sample_errors=0)['at_min_at_start'] is None
    assert set(rec) >= {'load_start', 'load_end', 'min_replicas', 'max_replicas',
                        'first_target_max', 'first_running_max', 'back_at_min',
                        'aborted', 'reason', 'locust_rc', 'sample_errors', 'samples'}


# --------------------------------------------------------- dashboard sample

def test_sample_from_recorded_status():
    doc = load_fixture('recorded/ray-2.60.0-serve-running.json')
    s = drv.sample_from_status(doc, 'echo', 'OpenAIEcho')
    assert s == {'app_status': 'RUNNING', 'deployment_status': 'HEALTHY',
                 'target_replicas': 1, 'running_replicas': 1, 'other_replicas': 0}


def test_sample_counts_non_running_replicas():
    doc = copy.deepcopy(load_fixture('recorded/ray-2.60.0-serve-running.json'))
    dep = doc['applications']['echo']['deployments']['OpenAIEcho']
    dep['target_num_replicas'] = 2
    dep['status'] = 'UPSCALING'
    dep['replicas'].append(dict(dep['replicas'][0], replica_id='new', state='STARTING'))
    s = drv.sample_from_status(doc, 'echo', 'OpenAIEcho')
    assert (s['target_replicas'], s['running_replicas'], s['other_replicas']) == (2, 1, 1)
    assert s['deployment_status'] == 'UPSCALING'


def test_sample_missing_app_or_deployment():
    doc = load_fixture('recorded/ray-2.60.0-serve-running.json')
    assert drv.sample_from_status(doc, 'nope', 'OpenAIEcho')['app_status'] == 'NOT_FOUND'
    s = drv.sample_from_status(doc, 'echo', 'Nope')
    assert s['deployment_status'] == 'NOT_FOUND' and s['target_replicas'] is None


def test_timeline_csv_round_trip():
    r = dict(row(12.5, 2, 1, other=1), elapsed_s=12.5, phase='load', app_status='RUNNING',
             deployment_status='UPSCALING')
    cells = drv.timeline_row_to_csv(r)
    back = drv.timeline_row_from_csv(dict(zip(drv.TIMELINE_COLUMNS, cells)))
    assert back == r
    unknown = drv.timeline_row_to_csv(dict(r, target_replicas=None))
    assert unknown[drv.TIMELINE_COLUMNS.index('target_replicas')] == ''


# ------------------------------------------------------------ locust history

HEADER = ('Timestamp,User Count,Type,Name,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,'
          '99.9%,99.99%,100%,Total Request Count,Total Failure Count,Total Median Response Time,'
          'Total Average Response Time,Total Min Response Time,Total Max Response Time,'
          'Total Average Content Size')


def hist_line(ts, users, name, rps, fps, total, fails, typ=''):
    pct = ','.join(['540'] * 11)
    return f'{ts},{users},{typ},{name},{rps:.6f},{fps:.6f},{pct},{total},{fails},540,541.2,517,588,290.9'


def test_history_last_aggregated_row():
    lines = [hist_line(1, 0, 'Aggregated', 0, 0, 0, 0),
             hist_line(2, 10, '/v1/chat/completions', 9.5, 0, 20, 1, typ='POST'),
             hist_line(2, 10, 'Aggregated', 9.5, 0.5, 20, 1),
             hist_line(3, 20, '/v1/chat/completions', 19.0, 0, 40, 2, typ='POST'),
             hist_line(3, 20, 'Aggregated', 19.0, 1.0, 40, 2),
             hist_line(4, 20, '/v1/chat/completions', 30.0, 0, 70, 3, typ='POST')]
    h = drv.parse_history(HEADER, lines)
    assert h == {'time': 3.0, 'users': 20, 'rps': 19.0, 'failures_per_s': 1.0,
                 'requests': 40, 'failures': 2}


def test_history_skips_cut_and_bad_rows():
    good = hist_line(2, 10, 'Aggregated', 9.5, 0, 20, 1)
    cut = hist_line(3, 20, 'Aggregated', 19.0, 0, 40, 2)[:30]
    assert drv.parse_history(HEADER, [good, cut])['requests'] == 20
    assert drv.parse_history(HEADER, []) is None
    assert drv.parse_history('Foo,Bar', [good]) is None


def test_read_history_file_being_written(tmp_path):
    p = tmp_path / 'locust_stats_history.csv'
    full = hist_line(2, 10, 'Aggregated', 9.5, 0, 20, 1)
    p.write_text(HEADER + '\n' + full + '\n' + hist_line(3, 20, 'Aggregated', 19, 0, 40, 2)[:40])
    assert drv.read_history(str(p))['users'] == 10
    # A small tail window that starts mid-line still finds the last full row.
    many = [hist_line(i, i, 'Aggregated', 1, 0, i, 0) for i in range(2000)]
    p.write_text(HEADER + '\n' + '\n'.join(many) + '\n')
    assert drv.read_history(str(p), tail_bytes=500)['users'] == 1999
    assert drv.read_history(str(tmp_path / 'missing.csv')) is None


def test_locust_command_flags():
    cmd = drv.locust_command('/v/bin/locust', '/f/locustfile.py', users=20, spawn_rate=5.0,
                             run_time=60, host='http://h:8000/slow', out='/o')
    assert cmd == ['/v/bin/locust', '-f', '/f/locustfile.py', '--headless', '-u', '20', '-r', '5',
                   '--run-time', '60s', '--host', 'http://h:8000/slow', '--csv', '/o/locust',
                   '--csv-full-history', '--html', '/o/report.html', '--only-summary',
                   '--stop-timeout', '5']


def test_parse_prompts():
    assert drv.parse_prompts('["a", "b"]') == ['a', 'b']
    for bad in ('[]', '{"a": 1}', '[1]', 'nope'):
        with pytest.raises(ValueError):
            drv.parse_prompts(bad)


# --------------------------------------------------------------- poll / stop

def run_cli(*args, timeout=60):
    res = subprocess.run([sys.executable, DRIVER, *args], capture_output=True, text=True,
                         timeout=timeout)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout.strip().splitlines()[-1])


@pytest.fixture
def procs():
    started = []

    def start(*cmd, **kw):
        p = subprocess.Popen(list(cmd), **kw)
        started.append(p)
        return p

    yield start
    for p in started:
        if p.poll() is None:
            p.kill()
        p.wait()


def wait_exit(p, timeout=10):
    try:
        p.wait(timeout=timeout)
        return True
    except subprocess.TimeoutExpired:
        return False


def test_poll_touches_heartbeat_and_reports_running(tmp_path, procs):
    p = procs('sleep', '300')
    (tmp_path / 'driver.pid').write_text(f'{p.pid}\n')
    (tmp_path / 'progress.json').write_text(json.dumps({'state': 'load', 'users': 20}))
    hb = tmp_path / 'heartbeat'
    hb.write_text('')
    os.utime(hb, (1, 1))
    out = run_cli('poll', '--out', str(tmp_path))
    assert out['state'] == 'load' and out['users'] == 20
    assert out['done'] is False and out['driver_alive'] is True
    assert time.time() - hb.stat().st_mtime < 30


def test_poll_done_once_driver_gone(tmp_path, procs):
    p = procs('sleep', '300')
    (tmp_path / 'driver.pid').write_text(f'{p.pid}\n')
    (tmp_path / 'progress.json').write_text(json.dumps({'state': 'done'}))
    (tmp_path / 'events.json').write_text('{}')
    assert run_cli('poll', '--out', str(tmp_path))['done'] is False  # events, but still alive
    p.kill()
    p.wait()
    out = run_cli('poll', '--out', str(tmp_path))
    assert out['done'] is True and out['events'] is True and out['state'] == 'done'


def test_poll_zombie_driver_counts_as_gone(tmp_path, procs):
    # A dead but not yet reaped driver (its parent, e.g. Ansible's async
    # wrapper, has not waited for it) has finished.
    p = procs('sleep', '300')
    (tmp_path / 'driver.pid').write_text(f'{p.pid}\n')
    (tmp_path / 'events.json').write_text('{}')
    os.kill(p.pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while drv.proc_info(p.pid)[0] != 'Z' and time.monotonic() < deadline:
        time.sleep(0.05)
    assert drv.proc_info(p.pid)[0] == 'Z'
    assert run_cli('poll', '--out', str(tmp_path))['done'] is True


def test_poll_driver_died_without_events(tmp_path, procs):
    p = procs('sleep', '300')
    (tmp_path / 'driver.pid').write_text(f'{p.pid}\n')
    (tmp_path / 'progress.json').write_text(json.dumps({'state': 'load'}))
    p.kill()
    p.wait()
    out = run_cli('poll', '--out', str(tmp_path))
    assert out['done'] is True and out['events'] is False and out['state'] == 'lost'


def test_poll_before_start(tmp_path):
    out = run_cli('poll', '--out', str(tmp_path / 'new'))
    assert out['done'] is False and out['state'] == 'not_started'
    assert (tmp_path / 'new' / 'heartbeat').exists()


def test_pid_recorded_before_the_process_started_is_not_ours(tmp_path, procs):
    pid_file = tmp_path / 'driver.pid'
    p = procs('sleep', '300')
    pid_file.write_text(f'{p.pid}\n')
    then = time.time() - 3600
    os.utime(pid_file, (then, then))  # "written an hour before it started": a recycled pid
    out = run_cli('stop', '--out', str(tmp_path))
    assert out == {'stopped': False}
    assert p.poll() is None


def test_stop_nothing_running(tmp_path):
    assert run_cli('stop', '--out', str(tmp_path)) == {'stopped': False}
    (tmp_path / 'driver.pid').write_text('999999999\n')
    assert run_cli('stop', '--out', str(tmp_path)) == {'stopped': False}


def test_stop_terminates_driver(tmp_path, procs):
    p = procs('sleep', '300')
    (tmp_path / 'driver.pid').write_text(f'{p.pid}\n')
    t = time.monotonic()
    assert run_cli('stop', '--out', str(tmp_path)) == {'stopped': True}
    # It sees the driver go at once (a zombie is gone), without waiting out the 15 s.
    assert time.monotonic() - t < 10
    assert wait_exit(p, 5)
    assert p.returncode == -signal.SIGTERM


def test_stop_kills_driver_that_ignores_sigterm_and_its_locust(tmp_path, procs):
    stubborn = procs(sys.executable, '-c',
                     'import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); '
                     'print("ready", flush=True); time.sleep(300)', stdout=subprocess.PIPE)
    assert stubborn.stdout.readline().strip() == b'ready'
    locust = procs('sleep', '300', start_new_session=True)
    (tmp_path / 'driver.pid').write_text(f'{stubborn.pid}\n')
    (tmp_path / 'locust.pgid').write_text(f'{locust.pid}\n')
    t = time.monotonic()
    assert run_cli('stop', '--out', str(tmp_path), '--timeout', '1') == {'stopped': True}
    assert time.monotonic() - t < 15
    assert wait_exit(stubborn, 5) and stubborn.returncode == -signal.SIGKILL
    assert wait_exit(locust, 5) and locust.returncode == -signal.SIGKILL


def test_stop_kills_orphaned_locust_group(tmp_path, procs):
    locust = procs('sleep', '300', start_new_session=True)
    (tmp_path / 'driver.pid').write_text('999999999\n')
    (tmp_path / 'locust.pgid').write_text(f'{locust.pid}\n')
    assert run_cli('stop', '--out', str(tmp_path)) == {'stopped': True}
    assert wait_exit(locust, 5)


def _run_dir(runs, name, pid=None, heartbeat_age=None, pgid=None):
    d = runs / name
    d.mkdir(parents=True)
    if pid is not None:
        (d / 'driver.pid').write_text(f'{pid}\n')
    if pgid is not None:
        (d / 'locust.pgid').write_text(f'{pgid}\n')
    if heartbeat_age is not None:
        hb = d / 'heartbeat'
        hb.write_text('')
        t = time.time() - heartbeat_age
        os.utime(hb, (t, t))
    return d


def test_sweep_no_runs_directory(tmp_path):
    out = run_cli('sweep', '--runs', str(tmp_path / 'missing'), '--heartbeat-timeout', '20')
    assert out == {'busy': [], 'stopped': [], 'removed': []}


def test_sweep_removes_finished_and_stops_stale_runs(tmp_path, procs):
    runs = tmp_path / 'runs'
    _run_dir(runs, 'finished', pid=999999999, heartbeat_age=5)
    stale_driver = procs('sleep', '300')
    locust = procs('sleep', '300', start_new_session=True)
    _run_dir(runs, 'interrupted', pid=stale_driver.pid, heartbeat_age=120, pgid=locust.pid)
    out = run_cli('sweep', '--runs', str(runs), '--heartbeat-timeout', '20')
    assert out['busy'] == []
    assert out['stopped'] == ['interrupted']
    assert out['removed'] == ['finished', 'interrupted']
    assert wait_exit(stale_driver, 5) and wait_exit(locust, 5)
    assert list(runs.iterdir()) == []


def test_sweep_reports_a_live_run_and_touches_nothing(tmp_path, procs):
    runs = tmp_path / 'runs'
    live = procs('sleep', '300')
    _run_dir(runs, 'live', pid=live.pid, heartbeat_age=3)
    stale = _run_dir(runs, 'old', pid=999999999, heartbeat_age=900)
    out = run_cli('sweep', '--runs', str(runs), '--heartbeat-timeout', '20')
    assert [b['run'] for b in out['busy']] == ['live']
    assert 0 <= out['busy'][0]['heartbeat_age_s'] < 20
    assert out['stale'] == ['old'] and out['removed'] == [] and out['stopped'] == []
    assert live.poll() is None and stale.exists()


def test_sweep_dry_run_changes_nothing(tmp_path, procs):
    runs = tmp_path / 'runs'
    stale_driver = procs('sleep', '300')
    d = _run_dir(runs, 'interrupted', pid=stale_driver.pid, heartbeat_age=120)
    out = run_cli('sweep', '--runs', str(runs), '--heartbeat-timeout', '20', '--dry-run')
    assert out == {'busy': [], 'stale': ['interrupted'], 'stopped': [], 'removed': []}
    assert stale_driver.poll() is None and d.exists()


# ------------------------------------------------- run, with stand-ins

FAKE_LOCUST = textwrap.dedent('''\
    import os, signal, sys, time
    a = sys.argv[1:]
    csv_base = a[a.index("--csv") + 1]
    run_s = int(a[a.index("--run-time") + 1].rstrip("s"))
    with open(csv_base + "_args.txt", "w") as f:
        f.write(" ".join(a) + "\\n" + os.environ.get("LOADTEST_MODEL", "") + "\\n"
                + os.environ.get("LOADTEST_PROMPTS", ""))
    open(csv_base + "_stats.csv", "w").write("Type,Name\\n")
    header = "Timestamp,User Count,Type,Name,Requests/s,Failures/s,Total Request Count,Total Failure Count"
    # Like Locust: SIGINT (Ctrl-C) ends the run early, the stats and report are still written.
    stopped = []
    signal.signal(signal.SIGINT, lambda *_: stopped.append(True))
    with open(csv_base + "_stats_history.csv", "w") as h:
        h.write(header + "\\n")
        end = time.time() + run_s
        n = 0
        while time.time() < end and not stopped:
            n += 1
            h.write(f"{int(time.time())},3,,Aggregated,2.5,0.0,{n},0\\n")
            h.flush()
            time.sleep(0.1)
    open(a[a.index("--html") + 1], "w").write("<html></html>")  # at the end, as Locust does
    sys.exit(int(os.environ.get("FAKE_LOCUST_RC", "0")))
''')


class FakeDashboard:
    """GET /api/serve/applications/: 1 replica, 2 from `up` s on, back to 1 at `down` s."""

    def __init__(self, up, down, app='slow', dep='OpenAIEcho'):
        self.t0 = None
        self.auth = []
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                fake.auth.append(self.headers.get('Authorization'))
                t = time.monotonic() - (fake.t0 or time.monotonic())
                fake.t0 = fake.t0 or time.monotonic()
                n = 2 if up <= t < down else 1
                reps = [{'replica_id': str(i), 'state': 'RUNNING'} for i in range(n)]
                body = json.dumps({'applications': {app: {'status': 'RUNNING', 'deployments': {
                    dep: {'status': 'HEALTHY', 'target_num_replicas': n, 'replicas': reps}}}}})
                self.send_response(200)
                self.send_header('Content-Type', 'application/json')
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *a):
                pass

        self.server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.server.server_address[1]}'
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake_locust(tmp_path):
    p = tmp_path / 'fake_locust.py'
    p.write_text(FAKE_LOCUST)
    return [sys.executable, str(p)]


def run_args(out, dashboard, locust_py, run_time=2, heartbeat_timeout=30, settle=10, token='', end_after_max=None):
    # --locust must be one executable: wrap the fake in a shell script.
    wrapper = os.path.join(os.path.dirname(out), 'locust')
    with open(wrapper, 'w') as f:
        f.write(f'#!/bin/sh\nexec {locust_py[0]} {locust_py[1]} "$@"\n')
    os.chmod(wrapper, 0o755)
    return ['run', '--out', out, '--host', 'http://127.0.0.1:1/slow/', '--model', 'm',
            '--users', '3', '--spawn-rate', '3', '--run-time', str(run_time),
            '--prompts', '["p1", "p2"]', '--max-tokens', '8', '--dashboard', dashboard,
            '--token-file', token, '--app', 'slow', '--deployment', 'OpenAIEcho',
            '--min-replicas', '1', '--max-replicas', '2', '--settle-timeout', str(settle),
            '--heartbeat-timeout', str(heartbeat_timeout), '--interval', '0.2',
            '--locust', wrapper, '--locustfile', '/dev/null'] + (
                [] if end_after_max is None else ['--end-after-max', str(end_after_max)])


def read_timeline(path):
    with open(path, newline='') as f:
        r = csv.DictReader(f)
        assert r.fieldnames == drv.TIMELINE_COLUMNS
        return [drv.timeline_row_from_csv(c) for c in r]


def test_run_records_scale_up_and_back(tmp_path, fake_locust):
    dash = FakeDashboard(up=0.6, down=2.8)
    token = tmp_path / 'token'
    token.write_text('s3cret\n')
    out = str(tmp_path / 'out')
    try:
        res = subprocess.run([sys.executable, DRIVER,
                              *run_args(out, dash.url, fake_locust, token=str(token))],
                             capture_output=True, text=True, timeout=60)
    finally:
        dash.close()
    assert res.returncode == 0, res.stderr + open(os.path.join(out, 'driver.log')).read()
    ev = json.load(open(os.path.join(out, 'events.json')))
    assert ev['aborted'] is False and ev['locust_rc'] == 0 and ev['sample_errors'] == 0
    assert ev['load_start'] < ev['first_target_max'] <= ev['first_running_max'] < ev['load_end']
    assert ev['load_end'] <= ev['back_at_min'] < ev['load_end'] + 5
    rows = read_timeline(os.path.join(out, 'timeline.csv'))
    assert ev['samples'] == len(rows) >= 10
    assert {r['phase'] for r in rows} == {'load', 'after'}
    assert all((r['phase'] == 'after') == (r['time'] >= ev['load_end']) for r in rows)
    assert set(dash.auth) == {'Bearer s3cret'}
    prog = json.load(open(os.path.join(out, 'progress.json')))
    assert prog['state'] == 'done' and prog['users'] == 3 and prog['rps'] == 2.5
    args = open(os.path.join(out, 'locust_args.txt')).read().splitlines()
    assert '--host http://127.0.0.1:1/slow --csv' in args[0]
    assert args[1] == 'm' and json.loads(args[2]) == ['p1', 'p2']


def test_run_ends_the_load_once_max_replicas_ran_long_enough(tmp_path, fake_locust):
    dash = FakeDashboard(up=0.6, down=3.0)
    out = str(tmp_path / 'out')
    try:
        res = subprocess.run([sys.executable, DRIVER, *run_args(out, dash.url, fake_locust, run_time=60,
                                                                end_after_max=0.5)],
                             capture_output=True, text=True, timeout=60)
    finally:
        dash.close()
    log = open(os.path.join(out, 'driver.log')).read()
    assert res.returncode == 0, res.stderr + log
    ev = json.load(open(os.path.join(out, 'events.json')))
    assert ev['aborted'] is False and ev['locust_rc'] == 0, ev
    # Ended after 0.5 s at 2 replicas, long before the 60 s run time; then back at min.
    assert ev['first_running_max'] + 0.5 <= ev['load_end'] < ev['load_start'] + 10, ev
    assert ev['back_at_min'] is not None and 'ending the load' in log
    # Ended as Locust's Ctrl-C: its report is written (SIGTERM would skip it).
    assert os.path.exists(os.path.join(out, 'report.html'))


def test_run_dead_man_switch_stops_locust(tmp_path, fake_locust):
    dash = FakeDashboard(up=100, down=200)
    out = str(tmp_path / 'out')
    try:
        t = time.monotonic()
        res = subprocess.run([sys.executable, DRIVER,
                              *run_args(out, dash.url, fake_locust, run_time=60,
                                        heartbeat_timeout=1.5)],
                             capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t
    finally:
        dash.close()
    assert res.returncode == drv.EXIT_ABORTED
    assert took < 20
    ev = json.load(open(os.path.join(out, 'events.json')))
    assert ev['aborted'] is True and ev['reason'] == 'the playbook stopped polling'
    assert ev['load_end'] is not None and ev['load_end'] - ev['load_start'] < 15
    pgid = drv.read_int(os.path.join(out, 'locust.pgid'))
    assert pgid and not drv.group_members(pgid)
    assert json.load(open(os.path.join(out, 'progress.json')))['state'] == 'aborted'


def test_run_sigterm_stops_locust(tmp_path, fake_locust):
    dash = FakeDashboard(up=100, down=200)
    out = str(tmp_path / 'out')
    try:
        p = subprocess.Popen([sys.executable, DRIVER, *run_args(out, dash.url, fake_locust,
                                                                run_time=60)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        pgid_file = os.path.join(out, 'locust.pgid')
        deadline = time.monotonic() + 20
        while not os.path.exists(pgid_file) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(0.5)
        pgid = drv.read_int(pgid_file)
        assert drv.group_members(pgid)
        p.send_signal(signal.SIGTERM)
        assert wait_exit(p, 20)
    finally:
        if p.poll() is None:
            p.kill()
        dash.close()
    assert p.returncode == drv.EXIT_ABORTED
    assert not drv.group_members(pgid)
    ev = json.load(open(os.path.join(out, 'events.json')))
    assert ev['aborted'] is True and 'SIGTERM' in ev['reason']


def test_run_locust_fails_to_start(tmp_path):
    dash = FakeDashboard(up=100, down=200)
    out = str(tmp_path / 'out')
    bad = tmp_path / 'bad_locust.py'
    bad.write_text('import sys; print("Could not find locustfile"); sys.exit(1)\n')
    try:
        res = subprocess.run([sys.executable, DRIVER,
                              *run_args(out, dash.url, [sys.executable, str(bad)])],
                             capture_output=True, text=True, timeout=60)
    finally:
        dash.close()
    assert res.returncode == drv.EXIT_NO_LOCUST
    ev = json.load(open(os.path.join(out, 'events.json')))
    assert ev['aborted'] is True and ev['locust_rc'] == 1
    assert 'Could not find locustfile' in ev['reason']


def test_run_counts_failed_samples(tmp_path, fake_locust):
    out = str(tmp_path / 'out')
    # Nothing listens on port 9: every sample fails, the run still completes.
    res = subprocess.run([sys.executable, DRIVER,
                          *run_args(out, 'http://127.0.0.1:9', fake_locust, run_time=1,
                                    settle=1)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    ev = json.load(open(os.path.join(out, 'events.json')))
    assert ev['samples'] == 0 and ev['sample_errors'] >= 3 and ev['back_at_min'] is None
    assert 'sample failed' in open(os.path.join(out, 'driver.log')).read()
    with open(os.path.join(out, 'timeline.csv')) as f:
        assert f.read().strip() == ','.join(drv.TIMELINE_COLUMNS)


def test_locust_env_carries_what_the_locustfile_reads():
    env = drv.locust_env({'PATH': '/bin'}, model='m', prompts=['p'], max_tokens=8, llm_csv='/run/llm.csv', wait_s=1.5)
    assert env == {'PATH': '/bin', 'LOADTEST_MODEL': 'm', 'LOADTEST_PROMPTS': '["p"]', 'LOADTEST_MAX_TOKENS': '8',
                   'LOADTEST_WAIT_S': '1.5', 'LOADTEST_LLM_CSV': '/run/llm.csv', 'PYTHONUNBUFFERED': '1'}
    assert drv.locust_env({}, model='m', prompts=[], max_tokens=1)['LOADTEST_WAIT_S'] == '0'
