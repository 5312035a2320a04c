"""CPU sets for the worker containers of a host (Compose `cpuset`).

vLLM's CPU engine binds its threads to the CPUs its process may use; two
workers of one host that may use every CPU bind their engines to the same
cores. Disjoint sets, one per worker, give each engine cores of its own.

  {{ cpus | ray_cpuset_split(workers) }}   -> ["0-7", "8-15"]: contiguous, as even as can be
  {{ "0-3,8" | ray_cpuset_ids }}           -> [0, 1, 2, 3, 8]
  {{ [0, 1, 2, 5] | ray_cpuset_string }}   -> "0-2,5"
"""
from __future__ import annotations

import re

CPUSET = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")


def _refuse(msg):
    # Imported here: importing Ansible at module load changes how other unit tests see warnings.
    from ansible.errors import AnsibleFilterError
    raise AnsibleFilterError(msg)


def ray_cpuset_ids(cpuset):
    """The CPU ids of a cpuset string such as "0-3,8"; refuses anything else."""
    text = str(cpuset).replace(" ", "")
    if not CPUSET.match(text):
        _refuse(f"'{cpuset}' is not a cpuset: use CPU ids and ranges such as 0-3,8")
    ids = set()
    for part in text.split(","):
        first, _, last = part.partition("-")
        first, last = int(first), int(last or first)
        if last < first:
            _refuse(f"'{cpuset}' is not a cpuset: the range {part} runs backwards")
        ids.update(range(first, last + 1))
    return sorted(ids)


def ray_cpuset_string(cpus):
    """CPU ids as a cpuset string, runs of consecutive ids as ranges."""
    ids = sorted({int(cpu) for cpu in cpus})
    parts = []
    start = prev = None
    for cpu in ids + [None]:
        if start is not None and (cpu is None or cpu != prev + 1):
            parts.append(str(start) if start == prev else f"{start}-{prev}")
            start = None
        if cpu is not None and start is None:
            start = cpu
        prev = cpu
    return ",".join(parts)


def ray_cpuset_split(cpus, workers):
    """The host's CPUs split into `workers` contiguous sets whose sizes differ by one at most."""
    ids = sorted({int(cpu) for cpu in cpus})
    workers = int(workers)
    if workers < 1:
        return []
    if len(ids) < workers:
        _refuse(f"{len(ids)} CPU(s) cannot be split among {workers} workers: every worker needs one at least")
    return [ray_cpuset_string(ids[i * len(ids) // workers:(i + 1) * len(ids) // workers]) for i in range(workers)]


class FilterModule:
    def filters(self):
        return {"ray_cpuset_ids": ray_cpuset_ids, "ray_cpuset_string": ray_cpuset_string,
                "ray_cpuset_split": ray_cpuset_split}
