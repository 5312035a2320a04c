"""Pinned Ray port sets for host networking (multi-host clusters).

In host mode every Ray node on a host shares the host's ports, and a host
firewall must know them, so every per-node port is pinned. Node i on a host
(0 for the head, i for ray-worker-i) gets the block that starts at
base + i*stride: six service ports, then worker_ports worker ports (by default
the rest of the stride). A block longer than the stride runs into the next
node's block, which ray_port_overlaps names.

  {{ base | ray_node_ports(index, stride, worker_ports) }}
  {{ nodes | ray_port_overlaps }}   -> list of messages, empty when none overlap
"""
from __future__ import annotations



def _refuse(msg):
    # Imported here: importing Ansible at module load changes how other unit tests see warnings.
    from ansible.errors import AnsibleFilterError
    raise AnsibleFilterError(msg)

SERVICES = ("node_manager", "object_manager", "runtime_env_agent", "dashboard_agent_grpc",
            "dashboard_agent_listen", "metrics_export")
# The head's fixed ports (GCS, Serve, dashboard, client) must stay outside every block.
MIN_WORKER_PORTS = 16


def ray_node_ports(base, index, stride=200, worker_ports=None):
    base, index, stride = int(base), int(index), int(stride)
    if worker_ports in (None, "", 0, "0"):
        if stride < len(SERVICES) + MIN_WORKER_PORTS:
            _refuse(f"ray_cluster_ports_stride {stride} leaves fewer than {MIN_WORKER_PORTS} worker ports; "
                    f"use at least {len(SERVICES) + MIN_WORKER_PORTS}")
        worker_ports = stride - len(SERVICES)
    worker_ports = int(worker_ports)
    if worker_ports < MIN_WORKER_PORTS:
        _refuse(f"ray_cluster_worker_ports {worker_ports} is below {MIN_WORKER_PORTS}: too few worker "
                f"processes per node; use at least {MIN_WORKER_PORTS}")
    start = base + index * stride
    ports = {name: start + i for i, name in enumerate(SERVICES)}
    ports["min_worker"] = start + len(SERVICES)
    ports["max_worker"] = ports["min_worker"] + worker_ports - 1
    if start < 1024 or ports["max_worker"] > 65535:
        _refuse(f"node {index}'s ports would span {start}-{ports['max_worker']}, outside 1024-65535; "
                f"change ray_cluster_ports_base")
    return ports


def ray_node_ports_at(index, base, stride=200, worker_ports=None):
    """ray_node_ports with the index first, for map(): indexes | map('ray_node_ports_at', base, stride)."""
    return ray_node_ports(base, index, stride, worker_ports)


def ray_port_list(ports):
    """nftables-style list of a node's ports: the service ports, then the worker range."""
    return [str(ports[name]) for name in SERVICES] + [f"{ports['min_worker']}-{ports['max_worker']}"]


def ray_port_services(ports):
    """A node's service ports alone, {service: port}, in Ray's order (no worker range)."""
    return {name: ports[name] for name in SERVICES}


def ray_port_args(ports):
    """The `ray start` options that pin a node's ports."""
    return [f"--{name.replace('_', '-')}-port={ports[name]}" for name in SERVICES] + [
        f"--min-worker-port={ports['min_worker']}", f"--max-worker-port={ports['max_worker']}"]


def ray_port_nodes(ports_by_name, host):
    """{name: ports} of one host -> the node list that ray_port_overlaps takes."""
    return [{"host": host, "name": name, "ports": ports} for name, ports in ports_by_name.items()]


def port_range(ports):
    """The node's whole block as (first, last)."""
    return min(ports.values()), max(ports.values())


def ray_port_overlaps(nodes, fixed=None):
    """nodes: [{'host': h, 'name': n, 'ports': ray_node_ports(...)}]; fixed: {port: what} on the head's host.
    Messages naming each pair of nodes on one host whose blocks overlap, and each fixed port inside a block."""
    problems = []
    by_host = {}
    for node in nodes:
        by_host.setdefault(node["host"], []).append(node)
    for host, members in by_host.items():
        spans = sorted((port_range(n["ports"]), n["name"]) for n in members)
        for ((a_first, a_last), a_name), ((b_first, b_last), b_name) in zip(spans, spans[1:]):
            if b_first <= a_last:
                problems.append(f"{host}: the ports of {a_name} ({a_first}-{a_last}) and {b_name} "
                                f"({b_first}-{b_last}) overlap")
        for port, what in sorted((fixed or {}).get(host, {}).items()):
            for (first, last), name in spans:
                if first <= int(port) <= last:
                    problems.append(f"{host}: {what} port {port} lies in the ports of {name} ({first}-{last})")
    return problems


class FilterModule:
    def filters(self):
        return {"ray_node_ports": ray_node_ports, "ray_port_overlaps": ray_port_overlaps,
                "ray_port_list": ray_port_list, "ray_node_ports_at": ray_node_ports_at, "ray_port_nodes": ray_port_nodes,
                "ray_port_args": ray_port_args, "ray_port_services": ray_port_services}
