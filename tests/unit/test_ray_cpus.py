"""The worker containers' CPU sets (plugins/filter/ray_cpus.py).

Ansible is never imported here, not even by a refusal (the filter raises
AnsibleFilterError): once imported, it changes how later unit tests see a
module's warnings. A refusal raises a ValueError here instead. In the role,
the preflight's checks stop bad input before the filter would refuse it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "ray_cpus", Path(__file__).resolve().parents[2] / "plugins/filter/ray_cpus.py")
ray_cpus = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ray_cpus)


class Refused(ValueError):
    pass


@pytest.fixture(autouse=True)
def refuse_without_ansible(monkeypatch):
    def refuse(msg):
        raise Refused(msg)
    monkeypatch.setattr(ray_cpus, "_refuse", refuse)


def test_two_cpus_go_one_to_each_worker():
    assert ray_cpus.ray_cpuset_split([0, 1], 2) == ["0", "1"]


def test_an_even_split_in_ranges():
    assert ray_cpus.ray_cpuset_split(range(16), 2) == ["0-7", "8-15"]


def test_an_uneven_split_differs_by_one_at_most():
    sets = ray_cpus.ray_cpuset_split(range(7), 3)
    sizes = [len(ray_cpus.ray_cpuset_ids(s)) for s in sets]
    assert sets == ["0-1", "2-3", "4-6"]
    assert max(sizes) - min(sizes) <= 1


def test_the_split_keeps_the_host_cpus_only_and_every_one_once():
    cpus = ["2", "3", "5", "8", "9", "10"]  # as `sched_getaffinity` printed them, with gaps
    sets = ray_cpus.ray_cpuset_split(cpus, 2)
    assert sets == ["2-3,5", "8-10"]
    ids = [cpu for s in sets for cpu in ray_cpus.ray_cpuset_ids(s)]
    assert ids == sorted(int(c) for c in cpus)


def test_fewer_cpus_than_workers_are_refused():
    with pytest.raises(Refused, match="1 CPU"):
        ray_cpus.ray_cpuset_split([0], 2)


@pytest.mark.parametrize("text, ids", [("0", [0]), ("0-3,8", [0, 1, 2, 3, 8]), ("4, 2-3", [2, 3, 4])])
def test_cpuset_strings_parse(text, ids):
    assert ray_cpus.ray_cpuset_ids(text) == ids


@pytest.mark.parametrize("text", ["", "a", "1-", "0-3;4", "3-1"])
def test_malformed_cpusets_are_refused(text):
    with pytest.raises(Refused, match="not a cpuset"):
        ray_cpus.ray_cpuset_ids(text)


def test_ids_print_as_ranges():
    assert ray_cpus.ray_cpuset_string([5, 0, 1, 2, 7, 8]) == "0-2,5,7-8"
