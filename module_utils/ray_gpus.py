# -*- coding: utf-8 -*-
# Apache-2.0
"""NVIDIA GPU discovery, selection and worker placement for the ray_gpus module.

Pure functions on nvidia-smi's CSV output (no Ansible imports), so that the
unit tests and tests/device/gpu_discovery.py use them as the module does.
"""
from __future__ import annotations

import csv
import io
import re

# nvidia-smi --query-gpu fields, in this order. All exist since driver 450.
GPU_FIELDS = ['index', 'uuid', 'name', 'memory.total', 'memory.used', 'pci.bus_id', 'compute_mode',
              'mig.mode.current', 'ecc.errors.uncorrected.volatile.total', 'driver_version']
APP_FIELDS = ['gpu_uuid', 'pid', 'used_memory']

# What nvidia-smi prints for a field it could not read because of a fault.
ERROR_VALUES = ('[Unknown Error]', '[GPU requires reset]', '[GPU is lost]', 'ERR!', '[Error]')
# ... and for a field this GPU does not have (not a fault).
MISSING_VALUES = ('[N/A]', 'N/A', '[Not Supported]', '[Insufficient Permissions]', '')

LAYOUTS = ('per_gpu', 'per_host')


class GpuError(Exception):
    """Bad input or a host that cannot give what was asked; the message says how to fix it."""


def query_gpu_command(nvidia_smi='nvidia-smi'):
    return [nvidia_smi, '--query-gpu=' + ','.join(GPU_FIELDS), '--format=csv,noheader,nounits']


def query_apps_command(nvidia_smi='nvidia-smi'):
    return [nvidia_smi, '--query-compute-apps=' + ','.join(APP_FIELDS), '--format=csv,noheader,nounits']


def _rows(text):
    return [[cell.strip() for cell in row] for row in csv.reader(io.StringIO(text), skipinitialspace=True) if row]


def _int(value):
    try:
        return int(float(value))
    except (TypeError, ValueError):
        return None


def parse_gpus(text):
    """GPU dicts from `query_gpu_command` output. Rows that do not parse are returned as problems."""
    gpus, problems = [], []
    for row in _rows(text):
        if len(row) != len(GPU_FIELDS) or _int(row[0]) is None:
            problems.append('nvidia-smi printed a line that is not a GPU: %s' % ', '.join(row))
            continue
        f = dict(zip(GPU_FIELDS, row))
        errors = sorted(k for k, v in f.items() if v in ERROR_VALUES)
        gpus.append({
            'index': _int(f['index']),
            'uuid': f['uuid'],
            'name': f['name'],
            'memory_total_mib': _int(f['memory.total']),
            'memory_used_mib': _int(f['memory.used']),
            'pci_bus_id': f['pci.bus_id'],
            'compute_mode': f['compute_mode'],
            'mig_mode': None if f['mig.mode.current'] in MISSING_VALUES else f['mig.mode.current'],
            'ecc_uncorrected_volatile': _int(f['ecc.errors.uncorrected.volatile.total']),
            'driver_version': f['driver_version'],
            'errors': ['%s: %s' % (k, f[k]) for k in errors],
        })
    return gpus, problems


def parse_apps(text):
    """Compute processes from `query_apps_command` output: [{gpu_uuid, pid, used_memory_mib}]."""
    apps = []
    for row in _rows(text):
        if len(row) != len(APP_FIELDS) or _int(row[1]) is None:
            continue
        apps.append({'gpu_uuid': row[0], 'pid': _int(row[1]), 'used_memory_mib': _int(row[2])})
    return apps


def lost_gpus(stderr):
    """GPUs nvidia-smi names on stderr because it could not reach them (e.g. fallen off the bus)."""
    return sorted(set(re.findall(r'Unable to determine the device handle for (?:GPU\s*)?([0-9A-Fa-f]+:[0-9A-Fa-f]+:[0-9A-Fa-f]+\.[0-9A-Fa-f])', stderr or '')))


def assess(gpus, apps=(), own_pids=()):
    """Mark each GPU usable or not, with the reason. Processes in own_pids (this
    cluster's containers) do not make a GPU busy."""
    own = set(own_pids)
    out = []
    for gpu in gpus:
        gpu = dict(gpu)
        others = [a for a in apps if a['gpu_uuid'] == gpu['uuid'] and a['pid'] not in own]
        gpu['other_processes'] = [a['pid'] for a in others]
        reasons = []
        if gpu['errors']:
            reasons.append('nvidia-smi reports a fault (%s)' % '; '.join(gpu['errors']))
        if gpu['compute_mode'] == 'Prohibited':
            reasons.append('its compute mode is Prohibited')
        if gpu['mig_mode'] == 'Enabled':
            reasons.append('MIG mode is on (give its MIG devices to Ray by hand, or turn MIG off)')
        if gpu['ecc_uncorrected_volatile']:
            reasons.append('%d uncorrected ECC errors since the driver loaded' % gpu['ecc_uncorrected_volatile'])
        if others:
            reasons.append('busy: %d other process(es) (pid %s) use %d MiB' % (
                len(others), ', '.join(str(a['pid']) for a in others),
                sum(a['used_memory_mib'] or 0 for a in others)))
        gpu['usable'] = not reasons
        gpu['reason'] = '; '.join(reasons)
        gpu['busy_only'] = bool(reasons) and all(r.startswith('busy:') for r in reasons)
        out.append(gpu)
    return out


def normalize_request(gpus):
    """'auto', 'none', [] or a list of ids or of id groups -> ('auto'|'list'|'groups'|'none', value)."""
    if gpus is None or gpus == [] or (isinstance(gpus, str) and gpus.strip().lower() in ('none', '')):
        return 'none', []
    if isinstance(gpus, str):
        text = gpus.strip()
        if text.lower() == 'auto':
            return 'auto', None
        # "0,2" from -e on the command line.
        try:
            gpus = [int(x) for x in text.split(',')]
        except ValueError:
            raise GpuError("ray_gpus is %r; use 'auto', [] for none, a list of GPU ids such as [0, 2], "
                           "or one list per worker such as [[0, 1], [2, 3]]" % gpus)
    if not isinstance(gpus, (list, tuple)):
        raise GpuError("ray_gpus is %r; use 'auto', [], [0, 2] or [[0, 1], [2, 3]]" % (gpus,))
    if all(isinstance(g, (list, tuple)) for g in gpus):
        groups = []
        for group in gpus:
            ids = [_strict_id(g) for g in group]
            if not ids:
                raise GpuError('ray_gpus has an empty worker group %r; every worker needs at least one GPU' % (gpus,))
            groups.append(ids)
        return 'groups', groups
    return 'list', [_strict_id(g) for g in gpus]


def _strict_id(value):
    if isinstance(value, bool) or _int(value) is None or str(value).strip() != str(_int(value)) or _int(value) < 0:
        raise GpuError('%r is not a GPU id; GPU ids are the whole numbers nvidia-smi shows (0, 1, ...)' % (value,))
    return _int(value)


def select(host, assessed, request, exclude=(), layout='per_gpu'):
    """Choose the GPUs and place them on workers.

    Returns {chosen, left_out: [{index, reason}], workers: [[ids]], warnings}.
    Raises GpuError for ids that are not on the host, a GPU given twice, or an
    explicit choice of a faulty GPU.
    """
    if layout not in LAYOUTS:
        raise GpuError("ray_gpu_layout is %r; use 'per_gpu' (one worker per GPU) or 'per_host' "
                       "(one worker with all of the host's chosen GPUs)" % (layout,))
    mode, value = normalize_request(request)
    by_index = {g['index']: g for g in assessed}
    on_host = ', '.join(str(i) for i in sorted(by_index)) or 'none'
    exclude = [_strict_id(e) for e in (exclude or [])]
    warnings, left_out = [], []

    for e in exclude:
        if e not in by_index:
            raise GpuError('ray_gpus_exclude names GPU %d, which %s does not have; its GPUs are %s'
                           % (e, host, on_host))

    if mode == 'none':
        return {'mode': mode, 'chosen': [], 'left_out': [], 'workers': [], 'warnings': []}

    if mode == 'auto':
        chosen = []
        for g in sorted(assessed, key=lambda g: g['index']):
            if g['index'] in exclude:
                left_out.append({'index': g['index'], 'reason': 'excluded by ray_gpus_exclude'})
            elif not g['usable']:
                left_out.append({'index': g['index'], 'reason': g['reason']})
            else:
                chosen.append(g['index'])
        groups = [[i] for i in chosen] if layout == 'per_gpu' else ([chosen] if chosen else [])
    else:
        groups = [[i] for i in value] if mode == 'list' and layout == 'per_gpu' else (
            [value] if mode == 'list' else value)
        flat = [i for grp in groups for i in grp]
        missing = sorted(set(i for i in flat if i not in by_index))
        if missing:
            raise GpuError('ray_gpus asks for GPU %s on %s, which it does not have; its GPUs are %s'
                           % (', '.join(str(i) for i in missing), host, on_host))
        twice = sorted(set(i for i in flat if flat.count(i) > 1))
        if twice:
            raise GpuError('ray_gpus gives GPU %s to more than one worker on %s (%r); each GPU may serve one '
                           'worker only' % (', '.join(str(i) for i in twice), host, request))
        both = sorted(set(flat) & set(exclude))
        if both:
            raise GpuError('GPU %s is both chosen in ray_gpus and excluded in ray_gpus_exclude on %s; '
                           'drop it from one of them' % (', '.join(str(i) for i in both), host))
        for i in flat:
            g = by_index[i]
            if g['usable']:
                continue
            if g['busy_only']:
                warnings.append('GPU %d on %s was chosen in ray_gpus but is %s' % (i, host, g['reason']))
            else:
                raise GpuError('GPU %d on %s was chosen in ray_gpus but cannot be used: %s. Choose other GPUs '
                               '(usable: %s) or ray_gpus: auto' % (
                                   i, host, g['reason'],
                                   ', '.join(str(x['index']) for x in assessed if x['usable']) or 'none'))
        chosen = flat
        for g in sorted(assessed, key=lambda g: g['index']):
            if g['index'] not in flat:
                left_out.append({'index': g['index'], 'reason': 'not in ray_gpus'})
    return {'mode': mode, 'chosen': chosen, 'left_out': left_out, 'workers': groups, 'warnings': warnings}


def workers_detail(assessed, groups):
    """Per worker: its GPU ids, UUIDs (what Compose's device_ids get) and names."""
    by_index = {g['index']: g for g in assessed}
    return [{'gpus': grp, 'uuids': [by_index[i]['uuid'] for i in grp],
             'names': [by_index[i]['name'] for i in grp]} for grp in groups]


def own_pids_from_cgroups(cgroups, container_ids):
    """pids whose cgroup path names one of container_ids. cgroups: {pid: text of /proc/pid/cgroup}."""
    ids = [c for c in container_ids if c]
    return sorted(pid for pid, text in cgroups.items() if any(c in (text or '') for c in ids))
