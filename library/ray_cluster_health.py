#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import annotations

DOCUMENTATION = r'''
---
module: ray_cluster_health
short_description: Check (and wait for) the health and size of a Ray cluster through its dashboard
description:
  - Reads the alive nodes and the GCS health from the Ray dashboard REST API and checks them against the expected
    number of nodes, CPUs and GPUs.
  - With O(wait_timeout), re-reads the cluster every O(interval) seconds until the expectations hold or the time is up.
    While waiting, an unreachable dashboard counts as "not ready yet".
  - With O(probe=true), also runs one tiny task pinned to every alive node through the Jobs API, to prove that each
    node really executes work, not just that it is registered.
  - Read-only; never reports a change and works in check mode.
author: ray-compose contributors
extends_documentation_fragment: [ray_dashboard]
options:
  min_nodes:
    description: Minimum number of alive nodes (head included).
    type: int
    default: 1
  min_cpus:
    description: Minimum total number of CPUs over all alive nodes.
    type: float
  min_gpus:
    description: Minimum total number of GPUs over all alive nodes.
    type: float
  exact_gpus:
    description:
      - Exact total number of GPUs over all alive nodes, e.g. V(0) to assert that a CPU cluster sees no GPU.
      - Mutually exclusive with O(min_gpus).
    type: float
  hosts:
    description:
      - Per-host expectations of a cluster across hosts (host networking, where each node's IP is its host's address).
        Nodes are matched to a host by their IP.
      - The summary then gets one line per host, and RV(hosts) the counts.
    type: list
    elements: dict
    suboptions:
      name: {description: Inventory name of the host., type: str, required: true}
      address: {description: The host's IP address in the cluster (the node IP of its nodes)., type: str, required: true}
      nodes: {description: Nodes expected alive on the host (at least)., type: int, default: 0}
      cpus: {description: CPUs expected on the host (at least)., type: float}
      gpus: {description: GPUs expected on the host (exactly)., type: float}
  wait_timeout:
    description: Seconds to wait for the expectations to hold. V(0) checks once.
    type: int
    default: 0
  interval:
    description: Seconds between two reads while waiting.
    type: float
    default: 2
  probe:
    description:
      - Submit a short job (no working_dir upload, no runtime_env) that runs one C(num_cpus=0) task pinned with
        C(NodeAffinitySchedulingStrategy(soft=False)) on every alive node, and fail if any node does not answer.
      - The latest probe job stays in the cluster's job list (its logs can be read there); each probe deletes the
        finished probe jobs of earlier runs. It also runs in check mode, as it changes no configuration.
      - Runs only once the other expectations hold.
    type: bool
    default: false
  probe_timeout:
    description: Seconds the probe job may take, from submission to a final status. A job still running then is stopped.
    type: int
    default: 120
notes:
  - With token authentication on (C(RAY_AUTH_MODE=token)), the dashboard answers 401 without a token and 403 with a
    wrong one; the module then fails at once instead of waiting. C(/api/gcs_healthz) stays open without a token.
  - The token is never written to the results or to error messages.
  - Requests carry no browser headers (Origin, Referer, Sec-Fetch-*), which the dashboard rejects on writes.
requirements: []
'''

EXAMPLES = r'''
- name: Wait up to 3 minutes for head and two workers (the token read from a file on the head)
  ray_cluster_health:
    dashboard_url: http://10.0.0.10:8265
    token_file: /opt/ray-cluster/secrets/ray_auth_token
    min_nodes: 3
    wait_timeout: 180
    interval: 5
  register: ray_health

- name: Show the cluster
  ansible.builtin.debug:
    var: ray_health.summary

- name: Two GPUs, no more, no less
  ray_cluster_health:
    dashboard_url: http://10.0.0.10:8265
    token_file: /opt/ray-cluster/secrets/ray_auth_token
    exact_gpus: 2
    min_cpus: 8

- name: Prove that every node runs tasks (token from RAY_AUTH_TOKEN)
  ray_cluster_health:
    min_nodes: 3
    probe: true
    probe_timeout: 90
  environment:
    RAY_AUTH_TOKEN: "{{ ray_token }}"
'''

RETURN = r'''
nodes:
  description: The alive nodes, head first, then by IP.
  returned: when the dashboard answered
  type: list
  elements: dict
  contains:
    node_id: {description: Ray node id (hex)., type: str}
    node_ip: {description: Node IP address., type: str}
    node_name: {description: Node name., type: str}
    is_head: {description: Whether this is the head node., type: bool}
    cpus: {description: CPUs the node offers., type: float}
    gpus: {description: GPUs the node offers., type: float}
    memory_bytes: {description: Memory resource of the node in bytes., type: int}
    object_store_memory_bytes: {description: Object store size in bytes., type: int}
    resources: {description: All of the node's C(resources_total)., type: dict}
  sample:
    - node_id: 5f1e0c6d2b8f4a7e9c3d1b0a6e5f4d3c2b1a0f9e8d7c6b5a4f3e2d1c
      node_ip: 172.18.0.2
      node_name: 172.18.0.2
      is_head: true
      cpus: 1
      gpus: 0
      memory_bytes: 2147483648
      object_store_memory_bytes: 268435456
      resources: {CPU: 1.0, memory: 2147483648.0, object_store_memory: 268435456.0, "node:172.18.0.2": 1.0, "node:__internal_head__": 1.0}
hosts:
  description: Per host of O(hosts), what was expected and what is alive there.
  returned: when O(hosts) is set and the dashboard answered
  type: list
  elements: dict
  sample:
    - {name: gpu01, address: 10.0.0.11, nodes: 2, expected_nodes: 2, cpus: 16, gpus: 2, expected_gpus: 2, ok: true}
totals:
  description: Sums over the alive nodes.
  returned: when the dashboard answered
  type: dict
  sample: {nodes: 3, cpus: 5, gpus: 0, object_store_memory_bytes: 805306368}
cpu_hosts:
  description: Number of alive nodes that offer at least some CPU.
  returned: when the dashboard answered
  type: int
  sample: 3
gpu_hosts:
  description: Number of alive nodes that offer at least some GPU.
  returned: when the dashboard answered
  type: int
  sample: 0
object_store_hosts:
  description: Number of alive nodes with an object store.
  returned: when the dashboard answered
  type: int
  sample: 3
gcs_healthy:
  description: Whether C(/api/gcs_healthz) answered C(success).
  returned: when the dashboard answered
  type: bool
  sample: true
probe:
  description: One entry per probed node.
  returned: when O(probe=true) and the probe job produced a result
  type: list
  elements: dict
  contains:
    node_id: {description: Ray node id., type: str}
    node_ip: {description: Node IP address (null for a node that joined after the node list was read)., type: str}
    ok: {description: Whether the pinned task ran on the node., type: bool}
    hostname: {description: Hostname seen by the task., type: str}
    pid: {description: PID of the worker that ran the task., type: int}
    python: {description: Python version on the node., type: str}
    ray: {description: Ray version on the node., type: str}
    error:
      description: Why the node failed the probe; null when it passed.
      type: str
  sample:
    - {node_id: 5f1e0c6d2b8f..., node_ip: 172.18.0.2, ok: true, hostname: ray-head, pid: 412, python: 3.12.9, ray: 2.60.0, error: null}
summary:
  description: Human-readable lines, one per node (head first), one per host of O(hosts), then a totals line.
  returned: when the dashboard answered
  type: list
  elements: str
  sample:
    - head    172.18.0.2  CPU 1  GPU 0  object store 256 MiB
    - worker  172.18.0.3  CPU 2  GPU 0  object store 256 MiB
    - worker  172.18.0.4  CPU 2  GPU 0  object store 256 MiB
    - "3 nodes alive: 3 CPU hosts, 0 GPU hosts, 3 object-store hosts; 5 CPUs, 0 GPUs"
elapsed:
  description: Seconds spent, waiting and probing included.
  returned: always
  type: float
  sample: 4.21
msg:
  description: The totals line on success, what is missing on failure.
  returned: always
  type: str
  sample: "3 nodes alive: 3 CPU hosts, 0 GPU hosts, 3 object-store hosts; 5 CPUs, 0 GPUs"
changed:
  description: Always false; the module changes nothing.
  returned: always
  type: bool
  sample: false
'''

import base64
import ipaddress
import json
import time

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ray_dashboard import (
    JOB_TERMINAL_STATES,
    RayDashboardClient,
    RayDashboardError,
    dashboard_argument_spec,
    validate_dashboard_params,
)

PROBE_MARKER = 'RAY_CLUSTER_PROBE'
PROBE_POLL_S = 1.0
STOP_GRACE_S = 15  # after stop_job, how long to wait for a final status (only final jobs can be deleted)
PROBE_METADATA = {'submitted_by': 'ansible ray_cluster_health'}

# Runs as the job's driver on the head. Base64 in the entrypoint avoids all shell quoting and needs no upload.
PROBE_SCRIPT = '''
import json, os, platform, socket
import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

ray.init(address="auto", logging_level="ERROR", log_to_driver=False)


@ray.remote(num_cpus=0, max_retries=0)
def probe():
    return {"node_id": ray.get_runtime_context().get_node_id(), "hostname": socket.gethostname(),
            "pid": os.getpid(), "python": platform.python_version(), "ray": ray.__version__}


def why(exc):
    lines = str(exc).strip().splitlines()
    return "%s: %s" % (type(exc).__name__, lines[-1] if lines else "")


refs = {n["NodeID"]: probe.options(scheduling_strategy=NodeAffinitySchedulingStrategy(n["NodeID"], soft=False)).remote()
        for n in ray.nodes() if n.get("Alive")}
ready = set(ray.wait(list(refs.values()), num_returns=len(refs), timeout=__TIMEOUT__)[0]) if refs else set()
out = {}
for node_id, ref in refs.items():
    if ref not in ready:
        out[node_id] = {"error": "no answer within __TIMEOUT__ s"}
        try:
            ray.cancel(ref, force=True)
        except Exception:
            pass
        continue
    try:
        out[node_id] = ray.get(ref)
    except Exception as exc:
        out[node_id] = {"error": why(exc)}
print("%s %s" % ("RAY_CLUSTER_PROBE", json.dumps(out, sort_keys=True)), flush=True)
'''


def _num(value):
    """Ray reports resources as floats; show 2.0 as 2."""
    value = float(value or 0)
    return int(value) if value.is_integer() else value


def _size(nbytes):
    for unit, div in (('GiB', 1 << 30), ('MiB', 1 << 20), ('KiB', 1 << 10)):
        if nbytes >= div:
            return '%s %s' % (('%.1f' % (nbytes / div)).rstrip('0').rstrip('.'), unit)
    return '%d B' % nbytes


def _plural(count, word):
    return '%s %s%s' % (count, word, '' if count == 1 else 's')


def _ip_key(ip):
    try:
        return (0, ipaddress.ip_address(ip), '')
    except ValueError:
        return (1, ipaddress.ip_address('0.0.0.0'), str(ip))


def node_record(raw):
    res = raw.get('resources_total') or {}
    return dict(
        node_id=raw.get('node_id'),
        node_ip=raw.get('node_ip'),
        node_name=raw.get('node_name'),
        is_head=bool(raw.get('is_head_node')),
        cpus=_num(res.get('CPU')),
        gpus=_num(res.get('GPU')),
        memory_bytes=int(res.get('memory') or 0),
        object_store_memory_bytes=int(res.get('object_store_memory') or 0),
        resources=res,
    )


def read_cluster(client):
    gcs = client.gcs_healthy()  # open even without a token
    nodes = [node_record(n) for n in client.alive_nodes()]
    nodes.sort(key=lambda n: (not n['is_head'], _ip_key(n['node_ip'])))
    return nodes, gcs


def describe(nodes):
    return ', '.join('%s %s' % ('head' if n['is_head'] else 'worker', n['node_ip']) for n in nodes) or 'none'


def find_problems(nodes, gcs, p):
    problems = [] if gcs else ['GCS is not healthy']
    cpus = sum(n['cpus'] for n in nodes)
    gpus = sum(n['gpus'] for n in nodes)
    if len(nodes) < p['min_nodes']:
        problems.append('expected at least %d alive nodes, found %d (%s)' % (p['min_nodes'], len(nodes), describe(nodes)))
    if p['min_cpus'] is not None and cpus < p['min_cpus']:
        problems.append('expected at least %s CPUs, found %s' % (_num(p['min_cpus']), _num(cpus)))
    if p['min_gpus'] is not None and gpus < p['min_gpus']:
        problems.append('expected at least %s GPUs, found %s' % (_num(p['min_gpus']), _num(gpus)))
    if p['exact_gpus'] is not None and abs(gpus - p['exact_gpus']) > 1e-6:
        problems.append('expected exactly %s GPUs, found %s' % (_num(p['exact_gpus']), _num(gpus)))
    for h in host_counts(nodes, p.get('hosts')):
        where = '%s (%s)' % (h['name'], h['address'])
        if h['nodes'] < h['expected_nodes']:
            problems.append('%s: expected at least %d alive nodes, found %d' % (where, h['expected_nodes'], h['nodes']))
        if h['expected_cpus'] is not None and h['cpus'] < h['expected_cpus']:
            problems.append('%s: expected at least %s CPUs, found %s' % (where, _num(h['expected_cpus']), _num(h['cpus'])))
        if h['expected_gpus'] is not None and abs(h['gpus'] - h['expected_gpus']) > 1e-6:
            problems.append('%s: expected exactly %s GPUs, found %s' % (where, _num(h['expected_gpus']), _num(h['gpus'])))
    return problems


def host_counts(nodes, hosts):
    """What is alive on each expected host, matched by node IP."""
    out = []
    for h in hosts or []:
        mine = [n for n in nodes if n['node_ip'] == h['address']]
        counts = dict(name=h['name'], address=h['address'], nodes=len(mine), expected_nodes=h['nodes'],
                      cpus=_num(sum(n['cpus'] for n in mine)), expected_cpus=h.get('cpus'),
                      gpus=_num(sum(n['gpus'] for n in mine)), expected_gpus=h.get('gpus'))
        counts['ok'] = (counts['nodes'] >= h['nodes']
                        and (h.get('cpus') is None or counts['cpus'] >= h['cpus'])
                        and (h.get('gpus') is None or abs(counts['gpus'] - h['gpus']) <= 1e-6))
        out.append(counts)
    return out


def summarize(nodes, gcs, expected_hosts=None):
    totals = dict(nodes=len(nodes), cpus=_num(sum(n['cpus'] for n in nodes)), gpus=_num(sum(n['gpus'] for n in nodes)),
                  object_store_memory_bytes=sum(n['object_store_memory_bytes'] for n in nodes))
    hosts = dict(cpu_hosts=sum(1 for n in nodes if n['cpus'] > 0), gpu_hosts=sum(1 for n in nodes if n['gpus'] > 0),
                 object_store_hosts=sum(1 for n in nodes if n['object_store_memory_bytes'] > 0))
    width = max((len(str(n['node_ip'])) for n in nodes), default=0)
    line = '%-6s  %-*s  CPU %s  GPU %s  object store %s'
    lines = [line % ('head' if n['is_head'] else 'worker', width, n['node_ip'], n['cpus'], n['gpus'], _size(n['object_store_memory_bytes']))
             for n in nodes]
    lines.append('%s alive: %s, %s, %s; %s, %s' % (
        _plural(len(nodes), 'node'), _plural(hosts['cpu_hosts'], 'CPU host'), _plural(hosts['gpu_hosts'], 'GPU host'),
        _plural(hosts['object_store_hosts'], 'object-store host'), _plural(totals['cpus'], 'CPU'), _plural(totals['gpus'], 'GPU')))
    result = dict(nodes=nodes, totals=totals, gcs_healthy=gcs, summary=lines, **hosts)
    if expected_hosts:
        counts = host_counts(nodes, expected_hosts)
        name_w = max(len(h['name']) for h in counts)
        addr_w = max(len(h['address']) for h in counts)
        for h in counts:  # before the totals line, which stays last (it is the msg)
            lines.insert(-1, 'host %-*s  %-*s  %d/%d nodes  CPU %s  GPU %s%s%s' % (
                name_w, h['name'], addr_w, h['address'], h['nodes'], h['expected_nodes'], h['cpus'], h['gpus'],
                '' if h['expected_gpus'] is None else '/%s' % _num(h['expected_gpus']), '' if h['ok'] else '  MISSING'))
        result['hosts'] = counts
    return result


def wait_for_cluster(module, client):
    """Re-read until the expectations hold or wait_timeout passes; return (summary or None, problems)."""
    p = module.params
    deadline = time.monotonic() + p['wait_timeout']
    while True:
        state = None
        try:
            nodes, gcs = read_cluster(client)
            state, problems = summarize(nodes, gcs, p.get('hosts')), find_problems(nodes, gcs, p)
        except RayDashboardError as e:
            if e.auth_failed:  # waiting will not fix a missing or wrong token
                raise
            problems = [e.msg]
        remaining = deadline - time.monotonic()
        if not problems or remaining <= 0:
            return state, problems
        time.sleep(min(p['interval'], remaining))


def wait_for_job(client, sid, timeout):
    deadline = time.monotonic() + timeout
    while True:
        info = client.job_info(sid)
        if info.get('status') in JOB_TERMINAL_STATES or time.monotonic() >= deadline:
            return info
        time.sleep(PROBE_POLL_S)


def parse_probe(logs):
    """Return the dict of the last RAY_CLUSTER_PROBE line in the job logs, or None."""
    for line in reversed(logs.splitlines()):
        pos = line.find(PROBE_MARKER + ' ')
        if pos < 0:
            continue
        try:
            data = json.loads(line[pos + len(PROBE_MARKER) + 1:])
        except ValueError:
            continue
        if isinstance(data, dict):
            return data
    return None


def probe_results(nodes, data):
    """Match the probe output against the alive nodes; return (entries, errors)."""
    entries, errors = [], []
    known = set()
    for n in nodes:
        known.add(n['node_id'])
        entries.append(_probe_entry(n['node_id'], n['node_ip'], data.get(n['node_id'])))
    # Nodes that joined after the node list was read are reported too.
    entries.extend(_probe_entry(nid, None, r) for nid, r in sorted(data.items()) if nid not in known)
    roles = {n['node_id']: 'head' if n['is_head'] else 'worker' for n in nodes}
    for e in entries:
        if not e['ok']:
            where = '%s %s' % (roles[e['node_id']], e['node_ip']) if e['node_ip'] else 'node %s' % e['node_id']
            errors.append('probe failed on %s: %s' % (where, e['error']))
    return entries, errors


def _probe_entry(node_id, node_ip, result):
    entry = dict(node_id=node_id, node_ip=node_ip, ok=False, hostname=None, pid=None, python=None, ray=None, error=None)
    if not isinstance(result, dict):
        entry['error'] = 'no result from this node (the probe job did not see it alive)'
    elif result.get('error'):
        entry['error'] = str(result['error'])
    else:
        entry.update(ok=True, **{k: result.get(k) for k in ('hostname', 'pid', 'python', 'ray')})
    return entry


def delete_old_probes(module, client):
    """Delete the finished probe jobs of earlier runs (best effort). A job deleted right after it finishes comes
    back a second later as FAILED ("Job supervisor actor died", measured on Ray 2.60), so each run leaves its own
    job in the list, where its logs can be read, and removes the older ones instead of waiting."""
    try:
        old = [j.get('submission_id') for j in client.list_jobs()
               if (j.get('metadata') or {}).get('submitted_by') == PROBE_METADATA['submitted_by']
               and j.get('status') in JOB_TERMINAL_STATES and j.get('submission_id')]
        for sid in old:
            client.delete_job(sid)
    except RayDashboardError as e:
        module.warn('could not delete old probe jobs: %s' % e.msg)


def run_probe(module, client, nodes):
    """Run the pinned-task job; return (entries or None, errors). Older probe jobs are deleted first (best effort)."""
    timeout = module.params['probe_timeout']
    # Leave the driver time to start and report before the module's own deadline.
    inner = max(1, timeout - min(30, timeout // 2))
    script = PROBE_SCRIPT.replace('__TIMEOUT__', str(inner))
    entrypoint = 'python -c "import base64;exec(base64.b64decode(\'%s\'))"' % base64.b64encode(script.encode()).decode()
    delete_old_probes(module, client)
    sid = client.submit_job(entrypoint, metadata=PROBE_METADATA)
    info = wait_for_job(client, sid, timeout)
    status = info.get('status')
    if status not in JOB_TERMINAL_STATES:
        client.stop_job(sid)
        wait_for_job(client, sid, STOP_GRACE_S)  # final, so the next run can delete it
        return None, ['probe job %s did not finish within %ss (status %s)' % (sid, timeout, status)]
    logs = client.job_logs(sid)
    data = parse_probe(logs)
    if data is None:
        tail = ' | '.join(logs.strip().splitlines()[-5:])[-500:]
        return None, ['probe job %s ended %s without a %s line: %s; log tail: %s'
                      % (sid, status, PROBE_MARKER, info.get('message') or 'no message', tail or 'empty')]
    return probe_results(nodes, data)


def validate(module):
    validate_dashboard_params(module)
    p = module.params
    for name in ('min_nodes', 'min_cpus', 'min_gpus', 'exact_gpus', 'wait_timeout'):
        if p[name] is not None and p[name] < 0:
            module.fail_json(msg='%s must not be negative, got %s' % (name, p[name]))
    for name in ('interval', 'probe_timeout'):
        if p[name] <= 0:
            module.fail_json(msg='%s must be greater than 0, got %s' % (name, p[name]))


def main():
    argument_spec = dashboard_argument_spec()
    argument_spec.update(
        min_nodes=dict(type='int', default=1),
        min_cpus=dict(type='float'),
        min_gpus=dict(type='float'),
        exact_gpus=dict(type='float'),
        wait_timeout=dict(type='int', default=0),
        interval=dict(type='float', default=2),
        probe=dict(type='bool', default=False),
        probe_timeout=dict(type='int', default=120),
        hosts=dict(type='list', elements='dict', options=dict(
            name=dict(type='str', required=True),
            address=dict(type='str', required=True),
            nodes=dict(type='int', default=0),
            cpus=dict(type='float'),
            gpus=dict(type='float'),
        )),
    )
    module = AnsibleModule(argument_spec=argument_spec, mutually_exclusive=[('min_gpus', 'exact_gpus')], supports_check_mode=True)
    validate(module)
    client = RayDashboardClient.from_module(module)
    start = time.monotonic()

    try:
        state, problems = wait_for_cluster(module, client)
    except RayDashboardError as e:
        module.fail_json(msg=e.msg, changed=False, elapsed=round(time.monotonic() - start, 2))
    result = dict(changed=False, **(state or {}))
    if problems:
        waited = ' after %ss' % module.params['wait_timeout'] if module.params['wait_timeout'] else ''
        module.fail_json(msg='Ray cluster at %s not ready%s: %s' % (client.url, waited, '; '.join(problems)),
                         elapsed=round(time.monotonic() - start, 2), **result)

    if module.params['probe']:
        try:
            entries, errors = run_probe(module, client, state['nodes'])
        except RayDashboardError as e:
            entries, errors = None, ['probe: %s' % e.msg]
        if entries is not None:
            result['probe'] = entries
        if errors:
            module.fail_json(msg='Ray cluster probe failed: %s' % '; '.join(errors), elapsed=round(time.monotonic() - start, 2), **result)

    module.exit_json(msg=state['summary'][-1], elapsed=round(time.monotonic() - start, 2), **result)


if __name__ == '__main__':
    main()
