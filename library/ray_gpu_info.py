#!/usr/bin/python
# -*- coding: utf-8 -*-
from __future__ import annotations

DOCUMENTATION = r'''
---
module: ray_gpu_info
short_description: Discover a host's NVIDIA GPUs, choose the usable ones and place them on Ray workers
description:
  - Runs C(nvidia-smi --query-gpu) and C(--query-compute-apps) and returns each GPU's index, UUID, name, memory and
    whether it is usable, with the reason when it is not.
  - A GPU is not usable when nvidia-smi reports a fault for it (for example C([GPU requires reset])), its compute mode
    is C(Prohibited), MIG mode is on, it has uncorrected ECC errors since the driver loaded, or processes outside this
    cluster run on it (busy). Processes inside the containers of O(compose_project) do not count as busy, so a second
    run on a running cluster chooses the same GPUs.
  - Chooses GPUs from O(gpus) and places them on workers by O(layout). Fails, naming the fix, on a GPU id the host
    does not have (the message lists the ids it has), a GPU given to two workers, an explicitly chosen faulty GPU,
    and on a host without a working driver when GPUs were asked for.
  - Read-only; never reports a change and works in check mode.
author: ray-compose contributors
options:
  gpus:
    description:
      - V(auto) chooses every usable GPU that is not in O(exclude), and says which it left out and why.
      - A list of GPU ids (as nvidia-smi numbers them), e.g. V([0, 2]), chooses exactly those; a busy one only warns.
      - A list of lists, e.g. V([[0, 1], [2, 3]]), gives each inner list to one worker (O(layout) is then ignored).
      - V([]) or V(none) chooses no GPU.
      - A string of comma-separated ids (V(0,2)) works as a list, for C(-e) on the command line.
    type: raw
    default: auto
  exclude:
    description: GPU ids that V(auto) must leave out, e.g. a GPU kept for something else.
    type: list
    elements: int
    default: []
  layout:
    description:
      - V(per_gpu) places one worker per chosen GPU; V(per_host) places one worker holding all chosen GPUs.
    type: str
    choices: [per_gpu, per_host]
    default: per_gpu
  required:
    description:
      - Fail when the host has no working NVIDIA driver. An explicit list in O(gpus) always requires one.
    type: bool
    default: false
  compose_project:
    description:
      - Compose project whose containers' GPU processes belong to this cluster and do not make a GPU busy.
    type: str
  nvidia_smi:
    description: The nvidia-smi executable.
    type: str
    default: nvidia-smi
  host_name:
    description: The host's name in messages, e.g. C(inventory_hostname). Default, the machine's hostname.
    type: str
notes:
  - Containers get GPUs by UUID (RV(workers[].uuids)), so a GPU that drops out and renumbers the others after a
    reboot never hands a worker the wrong GPU.
requirements:
  - The NVIDIA driver (nvidia-smi) on the host, when GPUs are used.
'''

EXAMPLES = r'''
- name: Use every usable GPU, one worker each
  ray_gpu_info:
    gpus: auto
    compose_project: ray
  register: ray_gpus_found

- name: The reference host - GPUs 0 and 2, GPU 1 is broken
  ray_gpu_info:
    gpus: [0, 2]

- name: One worker with all GPUs but GPU 3
  ray_gpu_info:
    gpus: auto
    exclude: [3]
    layout: per_host
'''

RETURN = r'''
present:
  description: Whether a working NVIDIA driver answered.
  returned: always
  type: bool
driver_version:
  description: The driver version nvidia-smi reports.
  returned: when present
  type: str
  sample: "580.159.04"
gpus:
  description: Every GPU nvidia-smi lists, with its usability.
  returned: always
  type: list
  elements: dict
  contains:
    index: {description: nvidia-smi's index., type: int}
    uuid: {description: The GPU's UUID., type: str}
    name: {description: Product name., type: str}
    memory_total_mib: {description: Total memory in MiB., type: int}
    memory_used_mib: {description: Used memory in MiB., type: int}
    usable: {description: Whether the GPU can be given to a worker., type: bool}
    reason: {description: Why it is not usable (empty when usable)., type: str}
    other_processes: {description: pids of processes outside the cluster on this GPU., type: list, elements: int}
  sample:
    - {index: 0, uuid: GPU-c7b3c4e5-22fc-dc2c-f093-58385d67bec3, name: NVIDIA H200, memory_total_mib: 143771,
       memory_used_mib: 0, usable: true, reason: "", other_processes: []}
chosen:
  description: The GPU ids given to workers.
  returned: always
  type: list
  elements: int
  sample: [0, 2]
left_out:
  description: GPUs not chosen, with the reason.
  returned: always
  type: list
  elements: dict
  sample: [{index: 1, reason: "busy: 1 other process(es) (pid 519) use 4614 MiB"}]
workers:
  description: One entry per GPU worker, in order.
  returned: always
  type: list
  elements: dict
  contains:
    gpus: {description: GPU ids., type: list, elements: int}
    uuids: {description: GPU UUIDs (Compose device_ids)., type: list, elements: str}
    names: {description: GPU names., type: list, elements: str}
  sample: [{gpus: [0], uuids: [GPU-aaaa], names: [NVIDIA H100 80GB HBM3]}, {gpus: [2], uuids: [GPU-cccc], names: [NVIDIA H100 80GB HBM3]}]
mode:
  description: How O(gpus) was read - V(auto), V(list) (ids), V(groups) (one list per worker) or V(none).
  returned: always
  type: str
  sample: list
lost:
  description: PCI bus ids of GPUs nvidia-smi could not reach (they are in no other list).
  returned: always
  type: list
  elements: str
msg:
  description: One line on what was found and chosen.
  returned: always
  type: str
  sample: "2 of 3 GPUs chosen on gpu01 (0, 2); left out GPU 1: busy: 1 other process(es) (pid 519) use 4614 MiB"
'''

import glob
import os

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.ray_gpus import (
    GpuError, assess, lost_gpus, normalize_request, own_pids_from_cgroups, parse_apps, parse_gpus,
    query_apps_command, query_gpu_command, select, workers_detail,
)


def nvidia_pci_devices():
    """PCI addresses of NVIDIA display/3D controllers (vendor 0x10de, class 0x03xxxx), driver or not."""
    found = []
    for dev in sorted(glob.glob('/sys/bus/pci/devices/*')):
        try:
            with open(os.path.join(dev, 'vendor')) as f:
                vendor = f.read().strip()
            with open(os.path.join(dev, 'class')) as f:
                klass = f.read().strip()
        except OSError:
            continue
        if vendor == '0x10de' and klass.startswith('0x03'):
            found.append(os.path.basename(dev))
    return found


def own_pids(module, project, pids):
    """pids (of GPU processes) that run in the containers of the Compose project."""
    docker = module.get_bin_path('docker')
    if not project or not docker or not pids:
        return []
    rc, out, _err = module.run_command([docker, 'ps', '-q', '--no-trunc', '--filter',
                                        'label=com.docker.compose.project=%s' % project])
    if rc != 0:
        return []
    cgroups = {}
    for pid in pids:
        try:
            with open('/proc/%d/cgroup' % pid) as f:
                cgroups[pid] = f.read()
        except OSError:
            pass
    return own_pids_from_cgroups(cgroups, out.split())


def main():
    module = AnsibleModule(
        argument_spec=dict(
            gpus=dict(type='raw', default='auto'),
            exclude=dict(type='list', elements='int', default=[]),
            layout=dict(type='str', choices=['per_gpu', 'per_host'], default='per_gpu'),
            required=dict(type='bool', default=False),
            compose_project=dict(type='str'),
            nvidia_smi=dict(type='str', default='nvidia-smi'),
            host_name=dict(type='str'),
        ),
        supports_check_mode=True,
    )
    p = module.params
    host = p['host_name'] or os.uname()[1]
    result = dict(changed=False, present=False, gpus=[], chosen=[], left_out=[], workers=[], lost=[])
    try:
        mode, _value = normalize_request(p['gpus'])
    except GpuError as e:
        module.fail_json(msg=str(e), **result)
    result['mode'] = mode
    required = p['required'] or mode in ('list', 'groups')
    asked = 'ray_gpus is %s' % (p['gpus'] if isinstance(p['gpus'], str) else list(p['gpus']))

    smi = module.get_bin_path(p['nvidia_smi']) if '/' not in p['nvidia_smi'] else p['nvidia_smi']
    rc, out, err = (module.run_command(query_gpu_command(smi)) if smi and os.path.exists(smi)
                    else (None, '', '%s not found' % p['nvidia_smi']))
    gpus, problems = parse_gpus(out) if rc == 0 or out.strip() else ([], [])
    if not gpus:
        pci = nvidia_pci_devices()
        why = ('%s answered with exit code %s: %s' % (p['nvidia_smi'], rc, (err or out).strip()[:300])
               if rc is not None else '%s not found' % p['nvidia_smi'])
        seen = (' although %d NVIDIA GPU(s) are on its PCI bus (%s)' % (len(pci), ', '.join(pci))) if pci else ''
        if required:
            module.fail_json(msg='GPUs were asked for (%s) but this host has no working NVIDIA driver%s: %s. '
                                 'Install the NVIDIA driver (this project does not), or set ray_gpus: [] '
                                 'for CPU workers.' % (asked, seen, why), **result)
        result['msg'] = 'No working NVIDIA driver%s (%s); no GPU workers.' % (seen, why)
        result['pci_devices'] = pci
        module.exit_json(**result)

    result['present'] = True
    result['driver_version'] = gpus[0]['driver_version']
    result['lost'] = lost_gpus(err)
    arc, aout, _aerr = module.run_command(query_apps_command(smi))
    apps = parse_apps(aout) if arc == 0 else []
    mine = own_pids(module, p['compose_project'], sorted(set(a['pid'] for a in apps)))
    assessed = assess(gpus, apps, mine)
    result['gpus'] = [dict((k, g[k]) for k in ('index', 'uuid', 'name', 'memory_total_mib', 'memory_used_mib',
                                               'usable', 'reason', 'other_processes')) for g in assessed]
    try:
        sel = select(host, assessed, p['gpus'], p['exclude'], p['layout'])
    except GpuError as e:
        module.fail_json(msg=str(e), **result)
    for w in sel['warnings'] + problems + ['nvidia-smi cannot reach the GPU at %s' % b for b in result['lost']]:
        module.warn(w)
    result.update(chosen=sel['chosen'], left_out=sel['left_out'], workers=workers_detail(assessed, sel['workers']))
    line = '%d of %d GPUs chosen on %s (%s)' % (len(sel['chosen']), len(assessed), host,
                                               ', '.join(str(i) for i in sel['chosen']) or 'none')
    if sel['left_out']:
        line += '; left out ' + '; '.join('GPU %d: %s' % (x['index'], x['reason']) for x in sel['left_out'])
    if result['lost']:
        line += '; nvidia-smi cannot reach the GPU at %s' % ', '.join(result['lost'])
    result['msg'] = line
    module.exit_json(**result)


if __name__ == '__main__':
    main()
