"""The pinned port sets of host networking (plugins/filter/ray_ports.py)."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

spec = importlib.util.spec_from_file_location(
    "ray_ports", Path(__file__).resolve().parents[2] / "plugins/filter/ray_ports.py")
ray_ports = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ray_ports)


def test_first_node_block():
    ports = ray_ports.ray_node_ports(20000, 0, 200)
    assert ports["node_manager"] == 20000
    assert ports["metrics_export"] == 20005
    assert (ports["min_worker"], ports["max_worker"]) == (20006, 20199)
    assert len(set(ports.values())) == len(ports)


def test_service_ports_leave_out_the_worker_range():
    ports = ray_ports.ray_node_ports(20000, 1, 200)
    services = ray_ports.ray_port_services(ports)
    assert list(services) == list(ray_ports.SERVICES)
    assert list(services.values()) == list(range(20200, 20206))


def test_second_node_on_a_host_does_not_collide():
    first, second = (ray_ports.ray_node_ports("20000", i, "200") for i in (0, 1))
    assert ray_ports.port_range(first)[1] < ray_ports.port_range(second)[0]
    nodes = [{"host": "gpu1", "name": f"ray-worker-{i + 1}", "ports": p} for i, p in enumerate((first, second))]
    assert ray_ports.ray_port_overlaps(nodes) == []


def test_same_block_on_two_hosts_is_fine():
    p = ray_ports.ray_node_ports(20000, 0)
    nodes = [{"host": h, "name": "ray-worker-1", "ports": p} for h in ("gpu1", "gpu2")]
    assert ray_ports.ray_port_overlaps(nodes) == []


def test_overlap_is_named():
    nodes = [{"host": "gpu1", "name": "ray-worker-1", "ports": ray_ports.ray_node_ports(20000, 0, 200)},
             {"host": "gpu1", "name": "ray-worker-2", "ports": ray_ports.ray_node_ports(20100, 0, 200)}]
    (problem,) = ray_ports.ray_port_overlaps(nodes)
    assert problem == "gpu1: the ports of ray-worker-1 (20000-20199) and ray-worker-2 (20100-20299) overlap"


def test_fixed_port_inside_a_block_is_named():
    nodes = [{"host": "head", "name": "ray-head", "ports": ray_ports.ray_node_ports(8000, 0, 200)}]
    problems = ray_ports.ray_port_overlaps(nodes, {"head": {8000: "Serve", 8265: "dashboard"}})
    assert problems == ["head: Serve port 8000 lies in the ports of ray-head (8000-8199)"]


@pytest.mark.parametrize("base, index, stride, message", [
    (20000, 0, 10, "leaves fewer than 16 worker ports"),
    (65500, 0, 200, "outside 1024-65535"),
    (500, 0, 200, "outside 1024-65535"),
])
def test_bad_layouts_are_refused(base, index, stride, message):
    with pytest.raises(Exception, match=message):
        ray_ports.ray_node_ports(base, index, stride)


def test_worker_ports_longer_than_the_stride_overlap():
    nodes = [{"host": "gpu1", "name": f"ray-worker-{i}", "ports": ray_ports.ray_node_ports(20000, i, 100, 200)}
             for i in (1, 2)]
    (problem,) = ray_ports.ray_port_overlaps(nodes)
    assert problem == "gpu1: the ports of ray-worker-1 (20100-20305) and ray-worker-2 (20200-20405) overlap"


def test_too_few_worker_ports_are_refused():
    with pytest.raises(Exception, match="ray_cluster_worker_ports 8 is below 16"):
        ray_ports.ray_node_ports(20000, 0, 200, 8)


def test_port_list_for_a_firewall():
    assert ray_ports.ray_port_list(ray_ports.ray_node_ports(20000, 1, 200, 50)) == [
        "20200", "20201", "20202", "20203", "20204", "20205", "20206-20255"]


def test_nodes_of_a_host_feed_the_overlap_check():
    ports = {"ray-head": ray_ports.ray_node_ports(20000, 0), "ray-worker-1": ray_ports.ray_node_ports(20000, 1)}
    nodes = ray_ports.ray_port_nodes(ports, "head")
    assert [n["name"] for n in nodes] == ["ray-head", "ray-worker-1"]
    assert ray_ports.ray_port_overlaps(nodes, {"head": {22: "SSH", 20150: "Serve HTTP"}}) == [
        "head: Serve HTTP port 20150 lies in the ports of ray-head (20000-20199)"]


def test_ray_start_options():
    assert ray_ports.ray_port_args(ray_ports.ray_node_ports(20000, 1, 200, 50)) == [
        "--node-manager-port=20200", "--object-manager-port=20201", "--runtime-env-agent-port=20202",
        "--dashboard-agent-grpc-port=20203", "--dashboard-agent-listen-port=20204", "--metrics-export-port=20205",
        "--min-worker-port=20206", "--max-worker-port=20255"]
