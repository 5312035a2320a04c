"""Report and verdict for one Serve autoscaling load test, run on the controller.

    python make_report.py --run-dir DIR [--title TEXT] [--max-failure-ratio 0.01]
        [--upscale-delay S] [--downscale-delay S] [--app NAME]
        [--users N] [--spawn-rate R] [--run-time S]

DIR holds what the driver wrote on the head host: Locust's CSVs (locust_stats.csv,
locust_stats_history.csv), report.html, timeline.csv, events.json and, from the
locustfile, llm_requests.csv (one row per streamed answer) and, from the play
with monitoring on, prometheus.json (Prometheus's answers over the load). Writes
timeline.png, summary.md, verdict.json, llm_timeline.csv (per 10 s: requests/s,
output tokens/s, time to first token, inter-token latency, replicas) and
prometheus.csv (Prometheus's series) into DIR and prints
verdict.json as one line. Exits 0 whatever the verdict (the playbook asserts on it); 2 when an input is
missing or unreadable, naming the file.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import os
import sys

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# The driver, next to this file, writes the CSVs; their columns live there once.
from loadtest_driver import LLM_COLUMNS, TIMELINE_COLUMNS

STATS = 'locust_stats.csv'
HISTORY = 'locust_stats_history.csv'
TIMELINE = 'timeline.csv'
EVENTS = 'events.json'
LLM = 'llm_requests.csv'
LLM_TIMELINE = 'llm_timeline.csv'
LLM_TIMELINE_COLUMNS = ['elapsed_s', 'requests_per_s', 'output_tokens_per_s', 'ttft_p50_ms', 'itl_p50_ms',
                        'running_replicas']
BUCKET_S = 10
# Seconds a new replica may take to start once Serve has decided on it: a replica RUNNING
# this long after the load ended still answers the load. The same margin as the upscale goal.
START_S = 10
# The goals: Serve's delay plus the time to start a replica (up) or to drain one (down).
UPSCALE_MARGIN_S = 10
DOWNSCALE_MARGIN_S = 15
EVENT_STYLE = {  # event key: (legend label, colour)
    'first_target_max': ('Serve decides max replicas', 'tab:orange'),
    'first_running_max': ('max replicas running', 'tab:green'),
    'back_at_min': ('back at min replicas', 'tab:purple'),
}
PANEL_LABELS = ['users', 'requests/s', 'latency (ms)', 'replicas']
PROMETHEUS = 'prometheus.json'
PROMETHEUS_CSV = 'prometheus.csv'
# The play's range queries (roles/ray_loadtest/vars/main.yml), in the CSV's order.
PROMETHEUS_SERIES = ['ttft_p50_ms', 'ttft_p95_ms', 'generation_tokens_per_s', 'requests_running',
                     'requests_waiting', 'kv_cache_usage_pct', 'target_replicas', 'running_replicas']


class InputError(Exception):
    """An input file is missing or not in the driver's format; the message names it."""


def number(text):
    """A CSV cell as a float; None for Locust's "N/A" and empty cells."""
    if text is None or text.strip() in ('', 'N/A'):
        return None
    return float(text)


def read_csv(path, required):
    try:
        with open(path, newline='') as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            missing = [c for c in required if c not in (reader.fieldnames or [])]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError('cannot read %s: %s' % (path, e))
    if missing:
        raise InputError('%s lacks the columns %s' % (path, ', '.join(missing)))
    return rows


def read_stats(path):
    """Locust's totals: the Aggregated row of locust_stats.csv."""
    rows = read_csv(path, ['Name', 'Request Count', 'Failure Count', 'Requests/s', '50%', '95%'])
    row = next((r for r in rows if r['Name'] == 'Aggregated'), None)
    if row is None:
        raise InputError('%s has no Aggregated row' % path)
    try:
        return {'requests': int(row['Request Count']), 'failures': int(row['Failure Count']),
                'rps_mean': number(row['Requests/s']) or 0.0,
                'p50_ms': number(row['50%']), 'p95_ms': number(row['95%'])}
    except ValueError as e:
        raise InputError('%s: bad Aggregated row: %s' % (path, e))


def read_history(path):
    """Locust's per-second Aggregated rows: time, users, rps, failures/s, p50, p95 (None where N/A)."""
    rows = read_csv(path, ['Timestamp', 'User Count', 'Name', 'Requests/s', 'Failures/s', '50%', '95%'])
    try:
        return [{'time': float(r['Timestamp']), 'users': int(r['User Count']), 'rps': number(r['Requests/s']),
                 'fps': number(r['Failures/s']), 'p50': number(r['50%']), 'p95': number(r['95%'])}
                for r in rows if r['Name'] == 'Aggregated']
    except ValueError as e:
        raise InputError('%s: bad row: %s' % (path, e))


def read_timeline(path):
    rows = read_csv(path, TIMELINE_COLUMNS)
    try:
        return [{'time': float(r['time']), 'phase': r['phase'],
                 'target': number(r['target_replicas']), 'running': number(r['running_replicas'])} for r in rows]
    except ValueError as e:
        raise InputError('%s: bad row: %s' % (path, e))


def read_llm(path):
    """The locustfile's rows, one per streamed answer; [] when the run has none (an older locustfile)."""
    if not os.path.exists(path):
        return []
    rows = read_csv(path, LLM_COLUMNS)
    try:
        return [{'time': float(r['time']), 'latency_ms': number(r['latency_ms']), 'ttft_ms': number(r['ttft_ms']),
                 'itl_ms': number(r['itl_ms']), 'output_tokens': int(r['output_tokens'])} for r in rows]
    except ValueError as e:
        raise InputError('%s: bad row: %s' % (path, e))


def percentile(values, q):
    """The nearest-rank q-th percentile of the values that are not None; None if there are none."""
    values = sorted(v for v in values if v is not None)
    if not values:
        return None
    return values[max(0, math.ceil(q / 100 * len(values)) - 1)]


def llm_summary(rows, events):
    """What LLM users read, over the answers that ended during the load: time to first token and
    inter-token latency (p50, p95, ms) and output tokens per second."""
    start, end = events['load_start'], events['load_end']
    during = [r for r in rows if start <= r['time'] <= end]
    if not during:
        return None
    tokens = sum(r['output_tokens'] for r in during)

    def ms(value):
        return None if value is None else round(value, 1)
    return {'answers': len(during), 'output_tokens': tokens,
            'output_tokens_per_s': round(tokens / max(end - start, 1e-9), 1),
            'ttft_p50_ms': ms(percentile([r['ttft_ms'] for r in during], 50)),
            'ttft_p95_ms': ms(percentile([r['ttft_ms'] for r in during], 95)),
            'itl_p50_ms': ms(percentile([r['itl_ms'] for r in during], 50)),
            'itl_p95_ms': ms(percentile([r['itl_ms'] for r in during], 95))}


def llm_buckets(rows, timeline, events):
    """Per BUCKET_S seconds since the load start: LLM_TIMELINE_COLUMNS (running replicas: the last sample)."""
    start = events['load_start']
    last = max([r['time'] for r in rows] + [r['time'] for r in timeline] + [events['load_end']])
    buckets = []
    for i in range(int((last - start) // BUCKET_S) + 1):
        lo, hi = start + i * BUCKET_S, start + (i + 1) * BUCKET_S
        inside = [r for r in rows if lo <= r['time'] < hi]
        running = [r['running'] for r in timeline if r['time'] < hi and r['running'] is not None]
        buckets.append({'elapsed_s': i * BUCKET_S + BUCKET_S / 2,
                        'requests_per_s': round(len(inside) / BUCKET_S, 2),
                        'output_tokens_per_s': round(sum(r['output_tokens'] for r in inside) / BUCKET_S, 1),
                        'ttft_p50_ms': percentile([r['ttft_ms'] for r in inside], 50),
                        'itl_p50_ms': percentile([r['itl_ms'] for r in inside], 50),
                        'running_replicas': running[-1] if running else None})
    return buckets


def write_llm_timeline(path, buckets):
    with open(path, 'w', newline='') as f:
        w = csv.writer(f)
        w.writerow(LLM_TIMELINE_COLUMNS)
        for b in buckets:
            w.writerow(['' if b[k] is None else b[k] for k in LLM_TIMELINE_COLUMNS])


def read_prometheus(path):
    """{'series': {name: [(time, value)]}, 'totals': {name: value}, 'errors': [...]} from the play's
    answers; None without the file (monitoring off)."""
    return read_prometheus_answers(read_json_object(path)) if os.path.exists(path) else None


def read_prometheus_answers(raw):
    """prometheus.json's content, as read_prometheus returns it."""
    def result(answer):
        data = answer.get('data') if isinstance(answer, dict) else None
        return (data or {}).get('result') or []

    def finite(text):
        value = number(str(text))
        return None if value is None or math.isnan(value) or math.isinf(value) else value
    series, totals = {}, {}
    for name, answer in (raw.get('series') or {}).items():
        rows = result(answer)[0].get('values', []) if result(answer) else []
        series[name] = [(float(t), finite(v)) for t, v in rows if finite(v) is not None]
    for name, answer in (raw.get('totals') or {}).items():
        rows = result(answer)
        totals[name] = finite(rows[0]['value'][1]) if rows else None
    return {'series': series, 'totals': totals, 'errors': raw.get('errors') or []}


def prometheus_summary(prom, events):
    """The whole load's figures (time to first token, generation tokens/s) and the peaks of the
    gauges while the load ran and the replicas came back; None when Prometheus had no vLLM series."""
    if not prom or not any(prom['series'].get(name) for name in PROMETHEUS_SERIES[:6]):
        return None
    start, end = events['load_start'], max(events.get('back_at_min') or events['load_end'], events['load_end'])

    def peak(name):
        values = [v for t, v in prom['series'].get(name, []) if start <= t <= end]
        return round(max(values), 1) if values else None

    def whole(name):
        value = prom['totals'].get(name)
        return None if value is None else round(value, 1)
    return {'ttft_p50_ms': whole('ttft_p50_ms'), 'ttft_p95_ms': whole('ttft_p95_ms'),
            'generation_tokens_per_s': whole('generation_tokens_per_s'),
            'generation_tokens_per_s_max': peak('generation_tokens_per_s'),
            'requests_running_max': peak('requests_running'), 'requests_waiting_max': peak('requests_waiting'),
            'kv_cache_usage_pct_max': peak('kv_cache_usage_pct'),
            'target_replicas_max': peak('target_replicas'), 'running_replicas_max': peak('running_replicas'),
            'points': sum(len(v) for v in prom['series'].values())}


def write_prometheus_csv(path, prom, events):
    times = sorted({t for values in prom['series'].values() for t, _ in values})
    by_name = {name: dict(values) for name, values in prom['series'].items()}
    with open(path, 'w', newline='') as f:
        out = csv.writer(f)
        out.writerow(['elapsed_s'] + PROMETHEUS_SERIES)
        for t in times:
            out.writerow([round(t - events['load_start'], 1)]
                         + ['' if by_name.get(name, {}).get(t) is None else round(by_name[name][t], 3)
                            for name in PROMETHEUS_SERIES])


def read_json_object(path):
    try:
        with open(path) as f:
            value = json.load(f)
    except (OSError, ValueError) as e:
        raise InputError('cannot read %s: %s' % (path, e))
    if not isinstance(value, dict):
        raise InputError('%s is not a JSON object' % path)
    return value


def read_events(path):
    events = read_json_object(path)
    for key in ('load_start', 'load_end', 'min_replicas', 'max_replicas'):
        if not isinstance(events.get(key), (int, float)) or isinstance(events.get(key), bool):
            raise InputError('%s: %s must be a number, not %r' % (path, key, events.get(key)))
    return events


def since(later, earlier):
    return None if later is None or earlier is None else round(later - earlier, 2)


def pct(ratio):
    return '%.3g%%' % (ratio * 100)


def replicas(n):
    return '%d replica%s' % (n, '' if n == 1 else 's')


def compute_verdict(events, stats, timeline, max_failure_ratio=0.01, upscale_delay=None, downscale_delay=None,
                    app=None):
    """The verdict as verdict.json holds it; `problems` explains every failed check in a sentence."""
    app = app or 'the app'
    start, end = events['load_start'], events['load_end']
    lo, hi = int(events['min_replicas']), int(events['max_replicas'])
    running_max, back = events.get('first_running_max'), events.get('back_at_min')
    problems = []

    scaled_up = running_max is not None and start <= running_max <= end + START_S
    if running_max is None:
        seen = [r['running'] for r in timeline if r['running'] is not None and r['time'] <= end + START_S]
        problems.append('%s never had %s RUNNING during the load (max seen: %s)'
                        % (app, replicas(hi), '%d' % max(seen) if seen else 'no samples'))
    elif running_max < start:
        problems.append('%s already had %s RUNNING before the load started' % (app, replicas(hi)))
    elif not scaled_up:
        problems.append('%s had %s RUNNING only %.0f s after the load ended (a replica may take %d s to start)'
                        % (app, replicas(hi), running_max - end, START_S))

    # Back at min before max ran would be the state before scaling up, not a scale down.
    scaled_down = back is not None and (running_max is None or back >= running_max)
    if not scaled_down:
        last = timeline[-1] if timeline else None
        seen = ('last seen %.0f s after the load: target %s, running %s'
                % (last['time'] - end, fmt(last['target']), fmt(last['running'])) if last else 'no samples')
        problems.append('%s was not back at %s after the load (%s)' % (app, replicas(lo), seen))

    requests, failures = stats['requests'], stats['failures']
    ratio = failures / requests if requests else 0.0
    failures_ok = requests > 0 and ratio <= max_failure_ratio
    if not requests:
        problems.append('Locust made no requests')
    elif not failures_ok:
        problems.append('failure ratio %s is above the bound %s (%d of %d requests failed)'
                        % (pct(ratio), pct(max_failure_ratio), failures, requests))

    aborted = bool(events.get('aborted'))
    if aborted:
        problems.append('the run was aborted: %s' % (events.get('reason') or 'no reason given'))

    goals = {}
    if upscale_delay is not None:
        goals['upscale_s'] = upscale_delay + UPSCALE_MARGIN_S
    if downscale_delay is not None:
        goals['downscale_s'] = downscale_delay + DOWNSCALE_MARGIN_S
    return {
        'scaled_up': scaled_up, 'scaled_down': scaled_down,
        'failure_ratio': round(ratio, 6), 'max_failure_ratio': max_failure_ratio, 'failures_ok': failures_ok,
        'requests': requests, 'failures': failures, 'rps_mean': round(stats['rps_mean'], 3),
        'p50_ms': stats['p50_ms'], 'p95_ms': stats['p95_ms'],
        'load_s': since(end, start),
        'reaction': {
            'load_start_to_scale_decided_s': since(events.get('first_target_max'), start),
            'load_start_to_replica_running_s': since(running_max, start),
            'load_end_to_back_at_min_s': since(back, end),
        },
        'goals': goals,
        'aborted': aborted,
        'ok': scaled_up and scaled_down and failures_ok and not aborted,
        'problems': problems,
    }


def fmt(value, unit=''):
    if value is None:
        return '–'
    return ('%d' % value if float(value).is_integer() else '%.1f' % value) + unit


def build_figure(history, timeline, events, title, subtitle='', buckets=None, prom=None):
    """Panels over seconds since load start: users, requests/s, latency, replicas; with streamed
    answers (buckets) also output tokens/s and time to first token / inter-token latency; with
    Prometheus's series (prom) also vLLM's time to first token and its requests and KV cache, its
    generation tokens/s beside Locust's, and Serve's replicas as Prometheus saw them."""
    start = events['load_start']
    prom_series = {name: values for name, values in ((prom or {}).get('series') or {}).items() if values}
    labels = PANEL_LABELS[:3] + (['output tokens/s', 'TTFT / ITL (ms)'] if buckets else []) + (
        ['vLLM TTFT (ms, Prometheus)', 'vLLM requests'] if prom_series else []) + PANEL_LABELS[3:]
    fig = Figure(figsize=(10, 2.5 * len(labels)), dpi=100, layout='constrained')
    FigureCanvasAgg(fig)
    axes = fig.subplots(len(labels), 1, sharex=True)
    hx = [h['time'] - start for h in history]

    def series(key, skip_zero=False):
        # Locust writes 0 ms percentiles until its window has data; NaN leaves a gap instead of a dip.
        return [math.nan if h[key] is None or (skip_zero and h[key] == 0) else h[key] for h in history]

    axes[0].plot(hx, series('users'), color='tab:blue')
    axes[0].yaxis.set_major_locator(MaxNLocator(integer=True))
    axes[1].plot(hx, series('rps'), label='requests/s', color='tab:blue')
    axes[1].plot(hx, series('fps'), label='failures/s', color='tab:red')
    axes[2].plot(hx, series('p50', True), label='p50', color='tab:blue')
    axes[2].plot(hx, series('p95', True), label='p95', color='tab:red')
    if buckets:
        bx = [b['elapsed_s'] for b in buckets]

        def column(key):
            return [math.nan if b[key] is None else b[key] for b in buckets]
        axes[3].plot(bx, column('output_tokens_per_s'), color='tab:blue', marker='.')
        axes[4].plot(bx, column('ttft_p50_ms'), label='time to first token p50', color='tab:blue', marker='.')
        axes[4].plot(bx, column('itl_p50_ms'), label='inter-token latency p50', color='tab:red', marker='.')
    if prom_series:
        def prom_line(ax, name, label, color, style='-'):
            values = prom_series.get(name) or []
            ax.plot([t - start for t, _ in values], [v for _, v in values], style, label=label, color=color)
        first = 5 if buckets else 3
        if buckets:
            prom_line(axes[3], 'generation_tokens_per_s', 'vLLM generation tokens/s (Prometheus)', 'tab:gray', '--')
        prom_line(axes[first], 'ttft_p50_ms', 'p50', 'tab:blue')
        prom_line(axes[first], 'ttft_p95_ms', 'p95', 'tab:red')
        prom_line(axes[first + 1], 'requests_running', 'running', 'tab:green')
        prom_line(axes[first + 1], 'requests_waiting', 'waiting', 'tab:orange')
        kv = axes[first + 1].twinx()
        prom_line(kv, 'kv_cache_usage_pct', 'KV cache', 'tab:purple', ':')
        kv.set_ylabel('KV cache usage (%)')
        kv.set_ylim(0, 100)
        kv.legend(loc='upper right', fontsize='small')
    replicas = axes[-1]
    tx = [r['time'] - start for r in timeline]
    for key, label, color in (('target', 'target', 'tab:orange'), ('running', 'running', 'tab:green')):
        replicas.step(tx, [math.nan if r[key] is None else r[key] for r in timeline], where='post',
                      label=label, color=color)
    if prom_series:
        for key, color in (('target_replicas', 'tab:orange'), ('running_replicas', 'tab:green')):
            values = prom_series.get(key) or []
            replicas.step([t - start for t, _ in values], [v for _, v in values], where='post', ls=':', lw=2,
                          label=key.split('_')[0] + ' (Prometheus)', color=color)
    replicas.yaxis.set_major_locator(MaxNLocator(integer=True))
    replicas.set_ylim(min(0, events['min_replicas']) - 0.2, events['max_replicas'] + 0.5)
    replicas.set_xlabel('seconds since load start')

    marks = []
    for ax, label in zip(axes, labels):
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc='best', fontsize='small')
        marks = [ax.axvline(0, color='black', lw=1, label='load start'),
                 ax.axvline(events['load_end'] - start, color='dimgray', lw=1, label='load end')]
        for key, (mark_label, color) in EVENT_STYLE.items():
            if events.get(key) is not None:
                marks.append(ax.axvline(events[key] - start, color=color, ls='--', lw=1.2, label=mark_label))
    # The markers are the same on every panel: one legend for the figure.
    fig.legend(handles=marks, loc='outside lower center', ncols=len(marks), fontsize='small')
    fig.suptitle(title + ('\n' + subtitle if subtitle else ''))
    return fig


def write_summary(verdict, title, run_dir, notes):
    lines = ['# ' + title, '']
    if verdict['ok']:
        lines.append('**PASS**: scaled up, back down, %s of requests failed.' % pct(verdict['failure_ratio']))
    else:
        lines.append('**FAIL**')
        lines += ['- ' + p for p in verdict['problems']]
    goals, reaction = verdict['goals'], verdict['reaction']
    lines += ['', '| Figure | Value | Goal |', '|---|---|---|',
              '| Load | %s | |' % fmt(verdict['load_s'], ' s'),
              '| Requests | %d | |' % verdict['requests'],
              '| Failures | %d | |' % verdict['failures'],
              '| Failure ratio | %s | ≤ %s |' % (pct(verdict['failure_ratio']), pct(verdict['max_failure_ratio'])),
              '| Requests/s (mean) | %.1f | |' % verdict['rps_mean'],
              '| p50 / p95 latency | %s / %s | |' % (fmt(verdict['p50_ms'], ' ms'), fmt(verdict['p95_ms'], ' ms')),
              '| Load start → Serve decides max replicas | %s | |' % fmt(
                  reaction['load_start_to_scale_decided_s'], ' s'),
              '| Load start → max replicas running | %s | %s |' % (
                  fmt(reaction['load_start_to_replica_running_s'], ' s'), goal(goals.get('upscale_s'))),
              '| Load end → back at min replicas | %s | %s |' % (
                  fmt(reaction['load_end_to_back_at_min_s'], ' s'), goal(goals.get('downscale_s')))]
    llm = verdict.get('llm')
    if llm:
        lines += ['| Time to first token p50 / p95 | %s / %s | |' % (fmt(llm['ttft_p50_ms'], ' ms'),
                                                                  fmt(llm['ttft_p95_ms'], ' ms')),
                  '| Inter-token latency p50 / p95 | %s / %s | |' % (fmt(llm['itl_p50_ms'], ' ms'),
                                                                  fmt(llm['itl_p95_ms'], ' ms')),
                  '| Output tokens/s (mean over the load) | %s | |' % fmt(llm['output_tokens_per_s'])]
    prom = verdict.get('prometheus')
    if prom:
        lines += ['| vLLM time to first token p50 / p95 (Prometheus, the whole load) | %s / %s | |' % (
                      fmt(prom['ttft_p50_ms'], ' ms'), fmt(prom['ttft_p95_ms'], ' ms')),
                  '| vLLM generation tokens/s (Prometheus, mean / peak) | %s / %s | |' % (
                      fmt(prom['generation_tokens_per_s']), fmt(prom['generation_tokens_per_s_max'])),
                  '| vLLM requests running / waiting (peak) | %s / %s | |' % (
                      fmt(prom['requests_running_max']), fmt(prom['requests_waiting_max'])),
                  '| vLLM KV-cache usage (peak) | %s | |' % fmt(prom['kv_cache_usage_pct_max'], ' %'),
                  "| Serve's target / running replicas (Prometheus, peak) | %s / %s | |" % (
                      fmt(prom['target_replicas_max']), fmt(prom['running_replicas_max']))]
    if notes:
        lines += [''] + ['Note: ' + n for n in notes]
    lines += ['', 'Files:']
    for name, what in (('report.html', "Locust's report"), (STATS, "Locust's totals"),
                       (HISTORY, "Locust's per-second history"), (TIMELINE, "Serve's replicas, sampled"),
                       ('timeline.png', 'the figure'), (EVENTS, "the driver's events"),
                       (LLM, 'each streamed answer: latency, time to first token, inter-token latency, tokens'),
                       (LLM_TIMELINE, 'per 10 s: requests/s, output tokens/s, TTFT, ITL, replicas'),
                       (PROMETHEUS_CSV, "Prometheus's series over the load (monitoring on)"),
                       ('verdict.json', 'this verdict')):
        there = os.path.exists(os.path.join(run_dir, name))
        lines.append('- [%s](%s): %s%s' % (name, name, what, '' if there else ' (missing)'))
    return '\n'.join(lines) + '\n'


def goal(seconds):
    return '' if seconds is None else '≤ %s' % fmt(seconds, ' s')


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--run-dir', required=True)
    p.add_argument('--title')
    p.add_argument('--max-failure-ratio', type=float, default=0.01)
    p.add_argument('--upscale-delay', type=float)
    p.add_argument('--downscale-delay', type=float)
    p.add_argument('--app')
    p.add_argument('--users', type=int)
    p.add_argument('--spawn-rate', type=float)
    # Empty: the load's own length (a load that ended early).
    p.add_argument('--run-time', type=lambda v: float(v) if v else None)
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    d = args.run_dir
    try:
        events = read_events(os.path.join(d, EVENTS))
        stats = read_stats(os.path.join(d, STATS))
        history = read_history(os.path.join(d, HISTORY))
        timeline = read_timeline(os.path.join(d, TIMELINE))
        llm_rows = read_llm(os.path.join(d, LLM))
        prom = read_prometheus(os.path.join(d, PROMETHEUS))
    except InputError as e:
        print('make_report: %s' % e, file=sys.stderr)
        return 2

    verdict = compute_verdict(events, stats, timeline, args.max_failure_ratio, args.upscale_delay,
                              args.downscale_delay, args.app)
    verdict['llm'] = llm_summary(llm_rows, events)
    buckets = llm_buckets(llm_rows, timeline, events) if llm_rows else None
    if buckets:
        write_llm_timeline(os.path.join(d, LLM_TIMELINE), buckets)
    verdict['prometheus'] = prometheus_summary(prom, events)
    if prom and prom['series']:
        write_prometheus_csv(os.path.join(d, PROMETHEUS_CSV), prom, events)
    title = args.title or 'Serve autoscaling load test' + (': ' + args.app if args.app else '')
    # What was asked for where given, else what the run shows.
    users = args.users if args.users is not None else max((h['users'] for h in history), default=0)
    run_time = args.run_time if args.run_time is not None else events['load_end'] - events['load_start']
    subtitle = ', '.join(filter(None, [
        'app %s' % args.app if args.app else '', '%d users' % users,
        'spawn rate %s/s' % fmt(args.spawn_rate) if args.spawn_rate is not None else '',
        'run time %s' % fmt(run_time, ' s'), 'replicas %d–%d' % (events['min_replicas'], events['max_replicas'])]))
    notes = []
    if prom and prom['errors']:
        notes.append('Prometheus did not answer every query: %s' % '; '.join(map(str, prom['errors'])))
    elif prom and not verdict['prometheus']:
        notes.append('Prometheus had no vLLM series for this run.')
    if events.get('sample_errors'):
        notes.append('%d of %d samples of Serve status failed; the replica timeline has gaps.'
                     % (events['sample_errors'], events.get('samples') or 0))

    build_figure(history, timeline, events, title, subtitle, buckets, prom).savefig(os.path.join(d, 'timeline.png'))
    with open(os.path.join(d, 'verdict.json'), 'w') as f:
        json.dump(verdict, f, indent=2)
        f.write('\n')
    with open(os.path.join(d, 'summary.md'), 'w') as f:
        f.write(write_summary(verdict, title, d, notes))
    print(json.dumps(verdict))
    return 0


if __name__ == '__main__':
    sys.exit(main())
