#!/usr/bin/env python3
"""Run the GPU discovery of the ray_gpus module against this host's real nvidia-smi.

For a GPU machine without Ansible or Docker (the project's lent device):
records nvidia-smi's raw answers as fixtures and prints what the module would
choose and place. Usage: python3 tests/device/gpu_discovery.py OUT_DIR
"""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), '..', '..', 'module_utils'))
import ray_gpus  # noqa: E402


def run(cmd):
    t = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True)
    return p.returncode, p.stdout, p.stderr, time.monotonic() - t


def main(out):
    os.makedirs(out, exist_ok=True)
    record = {}
    for name, cmd in [('query-gpu', ray_gpus.query_gpu_command()),
                      ('query-compute-apps', ray_gpus.query_apps_command()),
                      ('list', ['nvidia-smi', '-L']),
                      ('version', ['nvidia-smi', '--version'])]:
        rc, so, se, took = run(cmd)
        record[name] = {'cmd': cmd, 'rc': rc, 'stdout': so, 'stderr': se, 'seconds': round(took, 3)}
        with open(os.path.join(out, 'nvidia-smi-%s.txt' % name), 'w') as f:
            f.write(so)
    gpus, problems = ray_gpus.parse_gpus(record['query-gpu']['stdout'])
    apps = ray_gpus.parse_apps(record['query-compute-apps']['stdout'])
    assessed = ray_gpus.assess(gpus, apps)
    result = {'problems': problems, 'lost': ray_gpus.lost_gpus(record['query-gpu']['stderr']),
              'assessed': assessed, 'selections': {}}
    for label, request, layout in [('auto', 'auto', 'per_gpu'), ('auto-per-host', 'auto', 'per_host'),
                                   ('explicit-0', [0], 'per_gpu'), ('explicit-missing', [0, 7], 'per_gpu'),
                                   ('twice', [0, 0], 'per_gpu')]:
        try:
            sel = ray_gpus.select('device', assessed, request, layout=layout)
            sel['detail'] = ray_gpus.workers_detail(assessed, sel['workers'])
            result['selections'][label] = sel
        except ray_gpus.GpuError as e:
            result['selections'][label] = {'error': str(e)}
    with open(os.path.join(out, 'record.json'), 'w') as f:
        json.dump({'raw': record, 'result': result}, f, indent=2)
    print(json.dumps(result, indent=2))
    for name in ('query-gpu', 'query-compute-apps', 'list', 'version'):
        r = record[name]
        print('== nvidia-smi %s: rc %s in %.3f s' % (name, r['rc'], r['seconds']))
        print(r['stdout'].rstrip())
        if r['stderr'].strip():
            print('stderr:', r['stderr'].rstrip())
    return 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1] if len(sys.argv) > 1 else 'gpu-discovery'))
