"""make_report.py: the load test's verdict, figure and summary.

Locust's CSVs under fixtures/loadtest are recorded from real Locust; timeline.csv and events.json are
synthetic (fixtures/loadtest/README.md). Verdict cases below are built in code from a passing run."""
from __future__ import annotations

import json
import os
import shutil
import struct
import subprocess
import sys

import pytest
from conftest import FIXTURES, ROOT

SCRIPT = os.path.join(ROOT, 'roles', 'ray_loadtest', 'files', 'make_report.py')
sys.path.insert(0, os.path.dirname(SCRIPT))
import make_report  # noqa: E402

RUNS = os.path.join(FIXTURES, 'loadtest')
START, END = 1000.0, 1060.0
APP = 'echo-cpu-slow'


def events(**changes):
    base = dict(load_start=START, load_end=END, min_replicas=1, max_replicas=2, first_target_max=START + 12,
                first_running_max=START + 20, back_at_min=END + 30, aborted=False, reason='', locust_rc=0,
                sample_errors=0, samples=90)
    return {**base, **changes}


def stats(requests=1000, failures=0):
    return dict(requests=requests, failures=failures, rps_mean=16.5, p50_ms=13.0, p95_ms=22.0)


def timeline(*points):
    """(seconds since load start, target, running) -> rows as read_timeline returns them."""
    return [dict(time=START + t, phase='load' if START + t <= END else 'after', target=target, running=running)
            for t, target, running in points]


TIMELINE = timeline((0, 1, 1), (12, 2, 1), (20, 2, 2), (60, 2, 2), (90, 1, 1))


def verdict(ev=None, st=None, tl=TIMELINE, **kwargs):
    return make_report.compute_verdict(ev or events(), st or stats(), tl, app=APP, **kwargs)


def test_scaled_up_and_down_without_failures_passes():
    v = verdict()
    assert (v['ok'], v['scaled_up'], v['scaled_down'], v['failures_ok'], v['problems']) == (True, True, True, True, [])
    assert v['reaction'] == {'load_start_to_scale_decided_s': 12.0, 'load_start_to_replica_running_s': 20.0,
                             'load_end_to_back_at_min_s': 30.0}


def test_never_running_max_names_the_most_replicas_seen():
    v = verdict(events(first_running_max=None, back_at_min=None), tl=timeline((0, 1, 1), (12, 2, 1), (90, 2, 1)))
    assert not v['ok'] and not v['scaled_up'] and not v['scaled_down']
    assert v['problems'][0] == 'echo-cpu-slow never had 2 replicas RUNNING during the load (max seen: 1)'
    assert v['reaction']['load_start_to_replica_running_s'] is None
    assert v['reaction']['load_start_to_scale_decided_s'] == 12.0


def test_never_running_max_without_samples():
    v = verdict(events(first_running_max=None), tl=[])
    assert 'max seen: no samples' in v['problems'][0]


@pytest.mark.parametrize('at, up, words', [
    (END + 5, True, None),  # decided during the load, still starting when it ended
    (END + 25, False, 'only 25 s after the load ended'),
    (START - 5, False, 'already had 2 replicas RUNNING before the load started'),
])
def test_running_max_counts_within_the_load_and_start_window(at, up, words):
    v = verdict(events(first_running_max=at))
    assert v['scaled_up'] is up and v['ok'] is up
    assert (words is None) == (v['problems'] == [])
    if words:
        assert words in v['problems'][0]


def test_not_back_at_min_names_the_last_sample():
    v = verdict(events(back_at_min=None))
    assert v['scaled_up'] and not v['scaled_down'] and not v['ok']
    assert v['problems'] == ['echo-cpu-slow was not back at 1 replica after the load '
                             '(last seen 30 s after the load: target 1, running 1)']
    assert v['reaction']['load_end_to_back_at_min_s'] is None


def test_back_at_min_before_max_ran_is_no_scale_down():
    v = verdict(events(first_running_max=END + 8, back_at_min=END + 2))
    assert v['scaled_up'] and not v['scaled_down'] and not v['ok']


@pytest.mark.parametrize('failures, bound, ok', [
    (0, 0.01, True), (10, 0.01, True), (11, 0.01, False), (11, 0.02, True),
])
def test_failure_ratio_against_the_bound(failures, bound, ok):
    v = verdict(st=stats(1000, failures), max_failure_ratio=bound)
    assert v['failure_ratio'] == pytest.approx(failures / 1000)
    assert (v['failures_ok'], v['ok'], v['max_failure_ratio']) == (ok, ok, bound)
    assert v['problems'] == ([] if ok else ['failure ratio 1.1% is above the bound 1% (11 of 1000 requests failed)'])


def test_no_requests_is_a_failure():
    v = verdict(st=stats(0, 0))
    assert not v['failures_ok'] and not v['ok']
    assert v['problems'] == ['Locust made no requests']


def test_aborted_run_fails_with_its_reason():
    v = verdict(events(aborted=True, reason='the head host went away'))
    assert v['aborted'] and not v['ok']
    assert v['problems'] == ['the run was aborted: the head host went away']


def test_goals_only_for_the_delays_given():
    assert verdict()['goals'] == {}
    assert verdict(upscale_delay=30)['goals'] == {'upscale_s': 40}
    assert verdict(upscale_delay=30, downscale_delay=60)['goals'] == {'upscale_s': 40, 'downscale_s': 75}


def test_missing_events_give_null_reactions():
    v = verdict(events(first_target_max=None, first_running_max=None, back_at_min=None))
    assert v['reaction'] == dict.fromkeys(v['reaction'], None) and len(v['reaction']) == 3


def test_recorded_locust_totals():
    assert make_report.read_stats(os.path.join(RUNS, 'not-scaled', 'locust_stats.csv')) == dict(
        requests=122, failures=7, rps_mean=pytest.approx(17.6316, abs=1e-3), p50_ms=13.0, p95_ms=22.0)


def test_recorded_history_keeps_aggregated_rows_and_na_as_none():
    history = make_report.read_history(os.path.join(RUNS, 'not-scaled', 'locust_stats_history.csv'))
    assert len(history) == 8  # of 22: each second also has a row per endpoint
    assert history[0] == dict(time=1795656179.0, users=0, rps=0.0, fps=0.0, p50=None, p95=None)
    assert history[-1]['p95'] == 22.0 and history[-1]['users'] == 2


def test_na_percentiles_in_the_totals_are_none(tmp_path):
    text = open(os.path.join(RUNS, 'scaled', 'locust_stats.csv')).read().splitlines()
    text[-1] = ',Aggregated,0,0,0,0,0,0,0,0.0,0.0,' + ','.join(['N/A'] * 11)
    (tmp_path / 'locust_stats.csv').write_text('\n'.join(text) + '\n')
    st = make_report.read_stats(str(tmp_path / 'locust_stats.csv'))
    assert (st['requests'], st['p50_ms'], st['p95_ms']) == (0, None, None)


def test_figure_has_four_panels_with_event_marks():
    ev = events(back_at_min=None)
    # As Locust writes them: N/A first, then 0 ms until its window has data.
    history = [dict(time=START + t, users=min(t, 4), rps=t, fps=0.0, p50=[None, 0.0][t] if t < 2 else 12.0, p95=20.0)
               for t in range(60)]
    fig = make_report.build_figure(history, TIMELINE, ev, 'title', 'subtitle')
    assert [ax.get_ylabel() for ax in fig.axes] == ['users', 'requests/s', 'latency (ms)', 'replicas']
    assert fig.axes[3].get_xlabel() == 'seconds since load start'
    assert all(ax.get_shared_x_axes().joined(fig.axes[0], ax) for ax in fig.axes)
    for ax in fig.axes:  # load start, load end, decided, running; back_at_min is null
        assert sorted(line.get_xdata()[0] for line in ax.lines if line.get_label() in (
            'load start', 'load end', 'Serve decides max replicas', 'max replicas running')) == [0, 12, 20, 60]
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        'load start', 'load end', 'Serve decides max replicas', 'max replicas running']
    assert all(float(t).is_integer() for t in fig.axes[3].get_yticks())
    assert [line.get_label() for line in fig.axes[3].lines[:2]] == ['target', 'running']
    p50 = fig.axes[2].lines[0]
    assert p50.get_label() == 'p50' and all(y != y for y in p50.get_ydata()[:2]) and p50.get_ydata()[2] == 12


def png_size(path):
    with open(path, 'rb') as f:
        head = f.read(24)
    assert head[:8] == b'\x89PNG\r\n\x1a\n'
    return struct.unpack('>II', head[16:24])


def run_cli(run_dir, *args):
    return subprocess.run([sys.executable, SCRIPT, '--run-dir', str(run_dir), *args],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize('name, ok', [('scaled', True), ('not-scaled', False)])
def test_cli_writes_figure_summary_and_verdict(tmp_path, name, ok):
    run_dir = tmp_path / name
    shutil.copytree(os.path.join(RUNS, name), run_dir)
    result = run_cli(run_dir, '--app', APP, '--users', '4', '--spawn-rate', '1', '--run-time', '10',
                     '--upscale-delay', '2', '--downscale-delay', '5')
    assert result.returncode == 0, result.stderr
    v = json.loads((run_dir / 'verdict.json').read_text())
    assert json.loads(result.stdout) == v
    assert v['ok'] is ok and v['goals'] == {'upscale_s': 12, 'downscale_s': 20}
    assert png_size(run_dir / 'timeline.png') == (1000, 1000)
    summary = (run_dir / 'summary.md').read_text().splitlines()
    assert summary[0] == '# Serve autoscaling load test: echo-cpu-slow'
    assert summary[2].startswith('**PASS**' if ok else '**FAIL**')
    assert '| Requests | %d | |' % v['requests'] in summary
    assert '- [timeline.png](timeline.png): the figure' in summary
    if not ok:
        assert v['problems'] and all('- ' + p in summary for p in v['problems'])
        assert v['problems'][0] == 'echo-cpu-slow never had 2 replicas RUNNING during the load (max seen: 1)'
        assert 'failure ratio 5.74% is above the bound 1% (7 of 122 requests failed)' in v['problems']


@pytest.mark.parametrize('run_time', ['10', ''])
def test_summary_shows_how_long_the_load_ran(tmp_path, run_time):
    # '' is what report.yml passes when the load may end early
    # (ray_loadtest_end_after_scale_up): the figure's title takes the load's own length.
    run_dir = tmp_path / 'run'
    shutil.copytree(os.path.join(RUNS, 'scaled'), run_dir)
    events = json.loads((run_dir / 'events.json').read_text())
    result = run_cli(run_dir, '--run-time', run_time)
    assert result.returncode == 0, result.stderr
    load = round(events['load_end'] - events['load_start'], 3)
    assert json.loads(result.stdout)['load_s'] == load
    assert '| Load | %s | |' % make_report.fmt(load, ' s') in (run_dir / 'summary.md').read_text()


@pytest.mark.parametrize('damage, words', [
    (lambda d: (d / 'timeline.csv').unlink(), 'cannot read {d}/timeline.csv'),
    (lambda d: (d / 'events.json').write_text('{"load_start": 1'), 'cannot read {d}/events.json'),
    (lambda d: (d / 'events.json').write_text('{"load_start": null}'), '{d}/events.json: load_start must be a number'),
    (lambda d: (d / 'locust_stats.csv').write_text('Type,Name\n'), '{d}/locust_stats.csv lacks the columns'),
])
def test_cli_names_the_bad_input(tmp_path, damage, words):
    run_dir = tmp_path / 'run'
    shutil.copytree(os.path.join(RUNS, 'scaled'), run_dir)
    damage(run_dir)
    result = run_cli(run_dir)
    assert result.returncode == 2 and result.stdout == ''
    assert words.format(d=run_dir) in result.stderr
    assert not (run_dir / 'verdict.json').exists()


# --- the figures LLM users read (llm_requests.csv from the streaming locustfile) ---

def llm_rows(*rows):
    """(seconds since load start, ttft ms, itl ms, tokens) -> rows as read_llm returns them."""
    return [dict(time=START + t, latency_ms=1000.0, ttft_ms=ttft, itl_ms=itl, output_tokens=tokens)
            for t, ttft, itl, tokens in rows]


def test_llm_summary_counts_only_answers_that_ended_during_the_load():
    rows = llm_rows(*[(t, 100.0 + t, 10.0, 30) for t in range(0, 60, 2)], (-1, 1.0, 1.0, 999), (61, 1.0, 1.0, 999))
    llm = make_report.llm_summary(rows, events())
    # 30 answers of 30 tokens in the 60 s load; ttft 100..158 ms.
    assert llm == {'answers': 30, 'output_tokens': 900, 'output_tokens_per_s': 15.0, 'ttft_p50_ms': 128.0,
                   'ttft_p95_ms': 156.0, 'itl_p50_ms': 10.0, 'itl_p95_ms': 10.0}
    assert make_report.llm_summary([], events()) is None


def test_llm_percentiles_skip_answers_without_the_figure():
    rows = llm_rows((1, None, None, 1), (2, 50.0, None, 1), (3, 70.0, 5.0, 2))
    llm = make_report.llm_summary(rows, events())
    assert (llm['ttft_p50_ms'], llm['ttft_p95_ms'], llm['itl_p50_ms']) == (50.0, 70.0, 5.0)


def test_llm_buckets_per_ten_seconds_with_the_replicas_then():
    rows = llm_rows((1, 100.0, 10.0, 20), (2, 300.0, 30.0, 20), (15, 50.0, 5.0, 40))
    buckets = make_report.llm_buckets(rows, TIMELINE, events())
    assert buckets[0] == {'elapsed_s': 5.0, 'requests_per_s': 0.2, 'output_tokens_per_s': 4.0, 'ttft_p50_ms': 100.0,
                          'itl_p50_ms': 10.0, 'running_replicas': 1}
    assert buckets[1]['output_tokens_per_s'] == 4.0 and buckets[1]['ttft_p50_ms'] == 50.0
    assert buckets[2]['requests_per_s'] == 0 and buckets[2]['ttft_p50_ms'] is None
    assert buckets[2]['running_replicas'] == 2  # running max at 20 s
    assert len(buckets) == 10  # up to back at min, 90 s after the start


def test_figure_with_streamed_answers_has_tokens_and_ttft_panels():
    history = [dict(time=START + t, users=4, rps=t, fps=0.0, p50=12.0, p95=20.0) for t in range(60)]
    buckets = make_report.llm_buckets(llm_rows((1, 100.0, 10.0, 20), (15, 50.0, 5.0, 40)), TIMELINE, events())
    fig = make_report.build_figure(history, TIMELINE, events(), 'title', buckets=buckets)
    assert [ax.get_ylabel() for ax in fig.axes] == ['users', 'requests/s', 'latency (ms)', 'output tokens/s',
                                                   'TTFT / ITL (ms)', 'replicas']
    assert list(fig.axes[3].lines[0].get_ydata()[:2]) == [2.0, 4.0]
    assert [line.get_label() for line in fig.axes[4].lines[:2]] == ['time to first token p50', 'inter-token latency p50']
    assert [line.get_label() for line in fig.axes[5].lines[:2]] == ['target', 'running']


def scaled_run_with_answers(tmp_path):
    """The recorded passing run, with 19 streamed answers during its load; its events."""
    run_dir = tmp_path / 'run'
    shutil.copytree(os.path.join(RUNS, 'scaled'), run_dir)
    ev = json.loads((run_dir / 'events.json').read_text())
    lines = ['time,latency_ms,ttft_ms,itl_ms,output_tokens']
    lines += ['%.3f,900.0,%.1f,12.5,16' % (ev['load_start'] + 0.5 + i * 0.5, 100 + i) for i in range(19)]
    (run_dir / 'llm_requests.csv').write_text('\n'.join(lines) + '\n')
    return run_dir, ev


def test_cli_reports_the_llm_figures(tmp_path):
    run_dir, ev = scaled_run_with_answers(tmp_path)
    result = run_cli(run_dir, '--app', APP)
    assert result.returncode == 0, result.stderr
    v = json.loads((run_dir / 'verdict.json').read_text())
    assert v['llm']['answers'] == 19 and v['llm']['ttft_p50_ms'] == 109.0 and v['llm']['itl_p50_ms'] == 12.5
    assert v['llm']['output_tokens_per_s'] == round(19 * 16 / (ev['load_end'] - ev['load_start']), 1)
    summary = (run_dir / 'summary.md').read_text()
    assert '| Time to first token p50 / p95 | 109 ms / 118 ms | |' in summary
    assert '| Output tokens/s (mean over the load) | %s | |' % make_report.fmt(v['llm']['output_tokens_per_s']) in summary
    timeline = (run_dir / 'llm_timeline.csv').read_text().splitlines()
    assert timeline[0] == 'elapsed_s,requests_per_s,output_tokens_per_s,ttft_p50_ms,itl_p50_ms,running_replicas'
    assert png_size(run_dir / 'timeline.png') == (1000, 1500)


def test_cli_without_streamed_answers_has_no_llm_figures(tmp_path):
    run_dir = tmp_path / 'run'
    shutil.copytree(os.path.join(RUNS, 'scaled'), run_dir)
    result = run_cli(run_dir)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['llm'] is None
    assert not (run_dir / 'llm_timeline.csv').exists()


def prometheus_answers(load_start, load_end, back_at_min):
    """prometheus.json as the play writes it: Prometheus's range answers every 5 s, from 30 s before
    the load to 30 s after the replicas came back, and the whole load's figures."""
    times = [load_start - 30 + 5 * i for i in range(int((back_at_min + 30 - load_start + 30) // 5) + 1)]

    def matrix(value):
        return {'status': 'success', 'data': {'resultType': 'matrix', 'result': [
            {'metric': {}, 'values': [[t, str(value(t))] for t in times]}]}}

    def during(t, inside, outside=0):
        return inside if load_start <= t <= load_end else outside
    series = {
        'ttft_p50_ms': matrix(lambda t: during(t, 120.0, 'NaN')), 'ttft_p95_ms': matrix(lambda t: during(t, 480.0, 'NaN')),
        'generation_tokens_per_s': matrix(lambda t: during(t, 300.0 + (t - load_start))),
        'requests_running': matrix(lambda t: during(t, 8)), 'requests_waiting': matrix(lambda t: during(t, 3)),
        'kv_cache_usage_pct': matrix(lambda t: during(t, 12.5)),
        'target_replicas': matrix(lambda t: 2 if load_start <= t <= load_end + 5 else 1),
        # Beyond the window: not a peak of this run.
        'running_replicas': matrix(lambda t: 3 if t > back_at_min + 20 else 2 if (load_start + load_end) / 2 <= t <= load_end
                                   else 1),
    }

    def vector(value):
        return {'status': 'success', 'data': {'resultType': 'vector', 'result': [{'metric': {}, 'value': [load_end, value]}]}}
    totals = {'ttft_p50_ms': vector('130.25'), 'ttft_p95_ms': vector('495.0'), 'generation_tokens_per_s': vector('310.04')}
    return {'url': 'http://127.0.0.1:9090', 'series': series, 'totals': totals, 'errors': []}


def test_cli_adds_prometheus_series_to_figure_summary_and_csv(tmp_path):
    run_dir, ev = scaled_run_with_answers(tmp_path)
    back = ev.get('back_at_min') or ev['load_end']
    (run_dir / 'prometheus.json').write_text(json.dumps(prometheus_answers(ev['load_start'], ev['load_end'], back)))
    result = run_cli(run_dir, '--app', APP)
    assert result.returncode == 0, result.stderr
    prom = json.loads((run_dir / 'verdict.json').read_text())['prometheus']
    assert prom['ttft_p50_ms'] == 130.2 and prom['ttft_p95_ms'] == 495.0 and prom['generation_tokens_per_s'] == 310.0
    assert (prom['requests_running_max'], prom['requests_waiting_max'], prom['kv_cache_usage_pct_max']) == (8, 3, 12.5)
    assert (prom['target_replicas_max'], prom['running_replicas_max']) == (2, 2)
    summary = (run_dir / 'summary.md').read_text()
    assert '| vLLM time to first token p50 / p95 (Prometheus, the whole load) | 130.2 ms / 495 ms | |' in summary
    assert "| Serve's target / running replicas (Prometheus, peak) | 2 / 2 | |" in summary
    assert '- [prometheus.csv](prometheus.csv): ' in summary
    rows = (run_dir / 'prometheus.csv').read_text().splitlines()
    assert rows[0] == 'elapsed_s,' + ','.join(make_report.PROMETHEUS_SERIES)
    assert rows[1].startswith('-30.0,,,') and len(rows) > 10  # NaN before the load: empty cells
    # Two more panels: vLLM's time to first token, and its requests with the KV cache.
    assert png_size(run_dir / 'timeline.png') == (1000, 2000)


def test_figure_with_prometheus_series_draws_them():
    history = [dict(time=START + t, users=4, rps=t, fps=0.0, p50=12.0, p95=20.0) for t in range(60)]
    buckets = make_report.llm_buckets(llm_rows((1, 100.0, 10.0, 20), (15, 50.0, 5.0, 40)), TIMELINE, events())
    prom = make_report.read_prometheus_answers(prometheus_answers(START, END, END + 30))
    fig = make_report.build_figure(history, TIMELINE, events(), 'title', buckets=buckets, prom=prom)
    labels = [ax.get_ylabel() for ax in fig.axes]
    assert labels[:7] == ['users', 'requests/s', 'latency (ms)', 'output tokens/s', 'TTFT / ITL (ms)',
                          'vLLM TTFT (ms, Prometheus)', 'vLLM requests'] and labels[7] == 'replicas'
    assert [line.get_label() for line in fig.axes[5].lines[:2]] == ['p50', 'p95']
    assert [line.get_label() for line in fig.axes[7].lines[:4]] == ['target', 'running', 'target (Prometheus)',
                                                                    'running (Prometheus)']
    assert labels[8] == 'KV cache usage (%)'  # the twin axis of the requests panel


@pytest.mark.parametrize('answers, note', [
    ({'series': {'ttft_p50_ms': {'status': 'success', 'data': {'resultType': 'matrix', 'result': []}}}, 'totals': {},
      'errors': []}, 'Prometheus had no vLLM series for this run.'),
    ({'series': {}, 'totals': {}, 'errors': ['Status code was -1 and not [200]: Connection refused']},
     'Prometheus did not answer every query: Status code was -1 and not [200]: Connection refused'),
], ids=['no-series', 'no-answer'])
def test_cli_notes_prometheus_without_series(tmp_path, answers, note):
    run_dir = tmp_path / 'run'
    shutil.copytree(os.path.join(RUNS, 'scaled'), run_dir)
    (run_dir / 'prometheus.json').write_text(json.dumps(answers))
    result = run_cli(run_dir, '--app', APP)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)['prometheus'] is None
    assert 'Note: ' + note in (run_dir / 'summary.md').read_text()
    assert png_size(run_dir / 'timeline.png') == (1000, 1000)
