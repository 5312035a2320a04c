"""GPU discovery, selection and placement (module_utils/ray_gpus.py, library/ray_gpu_info.py)
on nvidia-smi answers recorded on a real H200 and written for the reference host (fixtures/nvidia-smi/)."""
from __future__ import annotations

import os
import stat

import pytest

from conftest import FIXTURES, module_runner

from ansible.module_utils import ray_gpus as g

SMI = os.path.join(FIXTURES, 'nvidia-smi')
REF_UUIDS = ['GPU-0b1e6a2c-3f4d-4e5a-9b6c-7d8e9f0a1b2c', 'GPU-1c2f7b3d-4a5e-4f6b-8c7d-8e9f0a1b2c3d',
             'GPU-2d3a8c4e-5b6f-4a7c-9d8e-9f0a1b2c3d4e']


def text(name):
    with open(os.path.join(SMI, name)) as f:
        return f.read()


def reference(gpu_file='reference-3gpu-query-gpu.txt', apps_file=None, own=()):
    gpus, problems = g.parse_gpus(text(gpu_file))
    assert problems == []
    apps = g.parse_apps(text(apps_file)) if apps_file else []
    return g.assess(gpus, apps, own)


# ------------------------------------------------------------- parsing

def test_parse_recorded_h200():
    gpus, problems = g.parse_gpus(text('h200-idle-query-gpu.txt'))
    assert problems == []
    assert gpus == [{
        'index': 0, 'uuid': 'GPU-c7b3c4e5-22fc-dc2c-f093-58385d67bec3', 'name': 'NVIDIA H200',
        'memory_total_mib': 143771, 'memory_used_mib': 0, 'pci_bus_id': '00000000:00:06.0',
        'compute_mode': 'Default', 'mig_mode': 'Disabled', 'ecc_uncorrected_volatile': 0,
        'driver_version': '580.159.04', 'errors': []}]
    assert g.assess(gpus)[0]['usable'] is True


def test_parse_recorded_h100():
    gpus, problems = g.parse_gpus(text('h100-idle-query-gpu.txt'))
    assert problems == []
    assert [(x['index'], x['name'], x['memory_total_mib'], x['driver_version']) for x in gpus] == \
        [(0, 'NVIDIA H100 80GB HBM3', 81559, '580.159.04')]
    assert g.assess(gpus)[0]['usable'] is True


def test_recorded_busy_h200_is_left_out_by_auto():
    gpus, _ = g.parse_gpus(text('h200-busy-query-gpu.txt'))
    apps = g.parse_apps(text('h200-busy-query-compute-apps.txt'))
    assert apps == [{'gpu_uuid': 'GPU-c7b3c4e5-22fc-dc2c-f093-58385d67bec3', 'pid': 519, 'used_memory_mib': 4614}]
    assessed = g.assess(gpus, apps)
    assert not assessed[0]['usable'] and assessed[0]['busy_only']
    assert assessed[0]['reason'] == 'busy: 1 other process(es) (pid 519) use 4614 MiB'
    sel = g.select('gpu01', assessed, 'auto')
    assert sel['chosen'] == [] and sel['workers'] == []
    assert sel['left_out'] == [{'index': 0, 'reason': 'busy: 1 other process(es) (pid 519) use 4614 MiB'}]


def test_processes_of_this_cluster_do_not_make_a_gpu_busy():
    gpus, _ = g.parse_gpus(text('h200-busy-query-gpu.txt'))
    apps = g.parse_apps(text('h200-busy-query-compute-apps.txt'))
    assert g.assess(gpus, apps, own_pids=[519])[0]['usable']


def test_own_pids_from_cgroups():
    cid = 'a' * 64
    cgroups = {519: '0::/system.slice/docker-%s.scope\n' % cid, 600: '0::/user.slice\n', 700: '0::/docker/%s\n' % cid}
    assert g.own_pids_from_cgroups(cgroups, [cid, 'b' * 64]) == [519, 700]
    assert g.own_pids_from_cgroups(cgroups, []) == []


def test_faulty_gpu_is_marked_with_the_fields():
    assessed = reference('reference-3gpu-faulty-query-gpu.txt')
    assert [x['usable'] for x in assessed] == [True, False, True]
    assert 'nvidia-smi reports a fault' in assessed[1]['reason']
    assert 'memory.total: [GPU requires reset]' in assessed[1]['reason']
    assert assessed[1]['memory_total_mib'] is None


@pytest.mark.parametrize('field, value, reason', [
    (6, 'Prohibited', 'compute mode is Prohibited'),
    (7, 'Enabled', 'MIG mode is on'),
    (8, '3', '3 uncorrected ECC errors'),
])
def test_other_unusable_states(field, value, reason):
    row = text('h200-idle-query-gpu.txt').strip().split(', ')
    row[field] = value
    gpus, _ = g.parse_gpus(', '.join(row))
    assessed = g.assess(gpus)
    assert not assessed[0]['usable'] and reason in assessed[0]['reason']


def test_not_supported_fields_are_not_faults():
    row = text('h200-idle-query-gpu.txt').strip().split(', ')
    row[7], row[8] = '[N/A]', '[N/A]'  # consumer GPUs: no MIG, no ECC
    gpus, _ = g.parse_gpus(', '.join(row))
    assert g.assess(gpus)[0]['usable']


def test_lost_gpu_named_from_stderr():
    assert g.lost_gpus(text('reference-3gpu-lost-query-gpu.stderr')) == ['0000:2A:00.0']
    assert g.lost_gpus('') == []


def test_unparsable_line_is_a_problem_not_a_gpu():
    gpus, problems = g.parse_gpus('No devices were found\n')
    assert gpus == [] and problems and 'No devices were found' in problems[0]


# ------------------------------------------------------------- selection and placement

def test_reference_host_explicit_0_and_2():
    assessed = reference()
    sel = g.select('gpu01', assessed, [0, 2])
    assert sel['chosen'] == [0, 2]
    assert sel['workers'] == [[0], [2]]
    assert sel['left_out'] == [{'index': 1, 'reason': 'not in ray_gpus'}]
    detail = g.workers_detail(assessed, sel['workers'])
    assert [w['uuids'] for w in detail] == [[REF_UUIDS[0]], [REF_UUIDS[2]]]


def test_explicit_list_from_the_command_line():
    assert g.select('gpu01', reference(), '0,2')['workers'] == [[0], [2]]


def test_auto_leaves_out_the_faulty_gpu_and_says_why():
    sel = g.select('gpu01', reference('reference-3gpu-faulty-query-gpu.txt'), 'auto')
    assert sel['chosen'] == [0, 2] and sel['workers'] == [[0], [2]]
    assert len(sel['left_out']) == 1 and sel['left_out'][0]['index'] == 1
    assert 'GPU requires reset' in sel['left_out'][0]['reason']


def test_auto_leaves_out_the_busy_gpu():
    sel = g.select('gpu01', reference(apps_file='reference-3gpu-busy-query-compute-apps.txt'), 'auto')
    assert sel['chosen'] == [0, 2]
    assert sel['left_out'] == [{'index': 1, 'reason': 'busy: 1 other process(es) (pid 48211) use 30512 MiB'}]


def test_auto_honours_exclude():
    sel = g.select('gpu01', reference(), 'auto', exclude=[1])
    assert sel['chosen'] == [0, 2]
    assert sel['left_out'] == [{'index': 1, 'reason': 'excluded by ray_gpus_exclude'}]


def test_per_host_layout_gives_one_worker_all_gpus():
    assert g.select('gpu01', reference(), [0, 2], layout='per_host')['workers'] == [[0, 2]]
    assert g.select('gpu01', reference('reference-3gpu-faulty-query-gpu.txt'), 'auto',
                    layout='per_host')['workers'] == [[0, 2]]


def test_explicit_groups():
    sel = g.select('gpu01', reference(), [[0, 1], [2]])
    assert sel['workers'] == [[0, 1], [2]] and sel['chosen'] == [0, 1, 2] and sel['left_out'] == []


@pytest.mark.parametrize('request_', [[], 'none', None])
def test_no_gpus(request_):
    sel = g.select('gpu01', reference(), request_)
    assert sel['workers'] == [] and sel['chosen'] == []


def test_explicit_busy_gpu_only_warns():
    sel = g.select('gpu01', reference(apps_file='reference-3gpu-busy-query-compute-apps.txt'), [0, 1])
    assert sel['workers'] == [[0], [1]]
    assert sel['warnings'] == ['GPU 1 on gpu01 was chosen in ray_gpus but is busy: 1 other process(es) '
                               '(pid 48211) use 30512 MiB']


def test_lost_gpu_renumbers_but_uuids_stay():
    # GPU 1 fell off the bus: the old GPU 2 is now index 1; the UUID still names it.
    assessed = reference('reference-3gpu-lost-query-gpu.txt')
    sel = g.select('gpu01', assessed, 'auto')
    assert [w['uuids'] for w in g.workers_detail(assessed, sel['workers'])] == [[REF_UUIDS[0]], [REF_UUIDS[2]]]


# ------------------------------------------------------------- bad input

@pytest.mark.parametrize('request_, message', [
    ([0, 3], 'ray_gpus asks for GPU 3 on gpu01, which it does not have; its GPUs are 0, 1, 2'),
    ([0, 0], 'ray_gpus gives GPU 0 to more than one worker on gpu01'),
    ([[0, 2], [2]], 'ray_gpus gives GPU 2 to more than one worker on gpu01'),
    ([0, 'x'], "'x' is not a GPU id"),
    ([0, -1], '-1 is not a GPU id'),
    ([0, 1.5], '1.5 is not a GPU id'),
    ('all', "ray_gpus is 'all'; use 'auto'"),
    ([[0], []], 'empty worker group'),
])
def test_bad_requests(request_, message):
    with pytest.raises(g.GpuError) as e:
        g.select('gpu01', reference(), request_)
    assert message in str(e.value)


def test_explicit_faulty_gpu_fails_with_the_usable_ones():
    with pytest.raises(g.GpuError) as e:
        g.select('gpu01', reference('reference-3gpu-faulty-query-gpu.txt'), [1, 2])
    assert 'GPU 1 on gpu01 was chosen in ray_gpus but cannot be used' in str(e.value)
    assert '(usable: 0, 2)' in str(e.value)


def test_exclude_of_a_gpu_the_host_lacks():
    with pytest.raises(g.GpuError) as e:
        g.select('gpu01', reference(), 'auto', exclude=[5])
    assert 'ray_gpus_exclude names GPU 5, which gpu01 does not have; its GPUs are 0, 1, 2' in str(e.value)


def test_chosen_and_excluded():
    with pytest.raises(g.GpuError) as e:
        g.select('gpu01', reference(), [0, 2], exclude=[2])
    assert 'GPU 2 is both chosen' in str(e.value)


def test_bad_layout():
    with pytest.raises(g.GpuError) as e:
        g.select('gpu01', reference(), 'auto', layout='per_node')
    assert "ray_gpu_layout is 'per_node'" in str(e.value)


# ------------------------------------------------------------- the module, with a stand-in nvidia-smi

@pytest.fixture
def fake_smi(tmp_path):
    """An executable nvidia-smi that prints chosen fixture files."""
    def make(gpu_file=None, apps_file=None, stderr_file=None, rc=0):
        script = tmp_path / 'nvidia-smi'
        lines = ['#!/bin/sh', 'case "$1" in', '  --query-gpu=*)']
        if gpu_file:
            lines.append('    cat %s' % os.path.join(SMI, gpu_file))
        if stderr_file:
            lines.append('    cat %s >&2' % os.path.join(SMI, stderr_file))
        lines += ['    exit %d;;' % rc, '  --query-compute-apps=*)']
        if apps_file:
            lines.append('    cat %s' % os.path.join(SMI, apps_file))
        lines += ['    exit 0;;', 'esac', 'exit 9']
        script.write_text('\n'.join(lines) + '\n')
        script.chmod(script.stat().st_mode | stat.S_IXUSR)
        return str(script)
    return make


@pytest.fixture
def run_gpu_module(capsys, monkeypatch):
    import ray_gpu_info
    monkeypatch.setattr(ray_gpu_info, 'nvidia_pci_devices', lambda: [])
    return module_runner(ray_gpu_info, capsys, monkeypatch)


def test_module_reference_host(run_gpu_module, fake_smi):
    r = run_gpu_module({'gpus': [0, 2], 'nvidia_smi': fake_smi('reference-3gpu-query-gpu.txt'), 'host_name': 'gpu01'})
    assert r['rc'] == 0 and r['changed'] is False and r['present'] is True
    assert r['driver_version'] == '580.159.04'
    assert r['chosen'] == [0, 2]
    assert [w['uuids'] for w in r['workers']] == [[REF_UUIDS[0]], [REF_UUIDS[2]]]
    assert r['msg'] == '2 of 3 GPUs chosen on gpu01 (0, 2); left out GPU 1: not in ray_gpus'


def test_module_auto_busy_recorded(run_gpu_module, fake_smi):
    r = run_gpu_module({'nvidia_smi': fake_smi('h200-busy-query-gpu.txt', 'h200-busy-query-compute-apps.txt'),
                        'host_name': 'gpu01'})
    assert r['rc'] == 0 and r['workers'] == [] and r['gpus'][0]['other_processes'] == [519]
    assert 'left out GPU 0: busy' in r['msg']


def test_module_lost_gpu_warns(run_gpu_module, fake_smi):
    r = run_gpu_module({'nvidia_smi': fake_smi('reference-3gpu-lost-query-gpu.txt',
                                               stderr_file='reference-3gpu-lost-query-gpu.stderr', rc=15)})
    assert r['rc'] == 0 and r['chosen'] == [0, 1] and r['lost'] == ['0000:2A:00.0']
    assert any('cannot reach the GPU at 0000:2A:00.0' in str(w) for w in r.get('warnings', []))
    assert r['msg'].endswith('; nvidia-smi cannot reach the GPU at 0000:2A:00.0')


def test_module_no_driver_not_asked(run_gpu_module, tmp_path):
    r = run_gpu_module({'nvidia_smi': str(tmp_path / 'missing-nvidia-smi')})
    assert r['rc'] == 0 and r['present'] is False and r['workers'] == []
    assert r['msg'].startswith('No working NVIDIA driver')


def test_module_no_driver_but_asked(run_gpu_module, tmp_path):
    r = run_gpu_module({'gpus': [0, 2], 'nvidia_smi': str(tmp_path / 'missing-nvidia-smi'), 'host_name': 'gpu01'})
    assert r['rc'] == 1 and r['failed']
    assert 'GPUs were asked for (ray_gpus is [0, 2]) but this host has no working NVIDIA driver' in r['msg']
    assert 'set ray_gpus: [] for CPU workers' in r['msg']


def test_module_no_driver_required_with_auto(run_gpu_module, tmp_path, monkeypatch):
    import ray_gpu_info
    monkeypatch.setattr(ray_gpu_info, 'nvidia_pci_devices', lambda: ['0000:18:00.0'])
    r = run_gpu_module({'required': True, 'nvidia_smi': str(tmp_path / 'missing-nvidia-smi')})
    assert r['rc'] == 1
    assert 'although 1 NVIDIA GPU(s) are on its PCI bus (0000:18:00.0)' in r['msg']


def test_module_driver_fails(run_gpu_module, fake_smi):
    r = run_gpu_module({'gpus': [0], 'nvidia_smi': fake_smi(rc=9)})
    assert r['rc'] == 1 and 'answered with exit code 9' in r['msg']


def test_module_bad_id(run_gpu_module, fake_smi):
    r = run_gpu_module({'gpus': [0, 7], 'nvidia_smi': fake_smi('reference-3gpu-query-gpu.txt'), 'host_name': 'gpu01'})
    assert r['rc'] == 1
    assert r['msg'] == 'ray_gpus asks for GPU 7 on gpu01, which it does not have; its GPUs are 0, 1, 2'
