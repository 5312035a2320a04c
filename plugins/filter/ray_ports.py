"""Pinned Ray port sets for host networking (multi-host clusters).

In host mode every Ray node on a host shares the host's ports, and a host
firewall must know them, so every per-node port is pinned. Node i on a host
(0 for the first node there) gets the block [base + i*stride, base + (i+1)*stride):
six service ports, then its worker port range.

  {{ ray_ports_base | ray_node_ports(index, ray_ports_stride) }}
  {{ nodes | ray_port_overlaps }}   -> list of messages, empty when none overlap
"""
from __future__ import annotations

SERVICES = ("node_manager", "object_manager", "runtime_env_agent", "dashboard_agent_grpc",
            "dashboard_agent_listen", "metrics_export")
# The head's fixed ports (GCS, Serve, dashboard, client) must stay outside every block.
MIN_WORKER_PORTS = 16


def ray_node_ports(base, index, stride=200):
    base, index, stride = int(base), int(index), int(stride)
    if stride < len(SERVICES) + MIN_WORKER_PORTS:
        raise ValueError(f"ray_ports_stride {stride} leaves fewer than {MIN_WORKER_PORTS} worker ports; "
                         f"use at least {len(SERVICES) + MIN_WORKER_PORTS}")
    start = base + index * stride
    ports = {name: start + i for i, name in enumerate(SERVICES)}
    ports["min_worker"] = start + len(SERVICES)
    ports["max_worker"] = start + stride - 1
    if ports["max_worker"] > 65535:
        raise ValueError(f"node {index}'s ports end at {ports['max_worker']}, above 65535; lower ray_ports_base")
    return ports


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
        return {"ray_node_ports": ray_node_ports, "ray_port_overlaps": ray_port_overlaps}
