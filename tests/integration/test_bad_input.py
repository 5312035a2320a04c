"""Bad input stops site.yml before anything changes, with a message that
says what is wrong and how to fix it.

These run the real site.yml against this machine (connection local). Every
case must fail inside the preflight play, so the recap shows changed=0 and
no later play starts.
"""
from __future__ import annotations

import json
import os
import re
import socket
import subprocess
from pathlib import Path

import pytest

from helpers import LOCAL, ONE_HOST, ROOT, run_playbook, words


def run_site(tmp_path: Path, inventory: str, *extra: str) -> subprocess.CompletedProcess:
    inv = tmp_path / "hosts.ini"
    inv.write_text(inventory)
    # A project name no real cluster uses, so no running cluster is mistaken for ours.
    return run_playbook("site.yml", "-i", str(inv), "-e", "ray_project_name=preflight-test",
                        "-e", "ray_project_dir=" + str(tmp_path / "project"), *extra)


def assert_stopped_early(result: subprocess.CompletedProcess, *messages: str) -> None:
    project = Path(next(arg for arg in result.args if arg.startswith("ray_project_dir=")).split("=", 1)[1])
    out = result.stdout + result.stderr
    assert result.returncode != 0, out
    for message in messages:
        assert re.search(message, out, re.S), f"expected {message!r} in:\n{out[-4000:]}"
    # Nothing changed, and no play after the preflight started; no project dir either.
    assert re.search(r"changed=0\b", out), out[-2000:]
    assert "Install and start Docker Engine" not in out, out[-2000:]
    assert not project.exists(), f"{project} was created"


def test_no_head(tmp_path):
    result = run_site(tmp_path, f"[ray_head]\n[ray_workers]\nlocalhost {LOCAL}\n")
    assert_stopped_early(result, r"exactly one host in the group `ray_head`; found 0", r"Put the host that runs the Ray head")


def test_two_heads(tmp_path):
    inventory = f"[ray_head]\nlocalhost {LOCAL}\nsecond-head ansible_host=127.0.0.1 {LOCAL}\n[ray_workers]\nlocalhost {LOCAL}\n"
    result = run_site(tmp_path, inventory)
    assert_stopped_early(result, r"found 2 \(localhost, second-head\)")


def test_unsupported_os(tmp_path):
    # This machine is Debian or Ubuntu; declare only an OS it is not.
    result = run_site(tmp_path, ONE_HOST, "-e", '{"docker_engine_supported": {"Fedora": ["40"]}}')
    assert_stopped_early(result, r"which this role does not\s+support", r"Supported: Debian 12/13 and Ubuntu 22.04/24.04")


@pytest.mark.parametrize("count", ["two", "0", "-1", "1.5"])
def test_worker_count_not_positive_integer(tmp_path, count):
    result = run_site(tmp_path, ONE_HOST, "-e", f"ray_cluster_workers={count}")
    assert_stopped_early(result, rf"ray_cluster_workers on localhost is\s+'{re.escape(count)}'", r"must be a positive integer")


@pytest.mark.parametrize("cpusets, message", [
    ('"some"', r'ray_cluster_worker_cpusets on localhost is "some"'),
    ('["0"]', r'is \["0"\].*a list of 2 cpuset\(s\), one per worker'),
    ('["0", "1-x"]', r'is \["0", "1-x"\]'),
    ('["0", "0,999"]', r"names CPU\(s\) 999, which this host does not offer"),
])
def test_bad_worker_cpusets(tmp_path, cpusets, message):
    extra = f'{{"ray_cluster_workers": 2, "ray_cluster_worker_cpusets": {cpusets}}}'
    assert_stopped_early(run_site(tmp_path, ONE_HOST, "-e", extra), message)


def test_more_workers_than_cpus_to_split(tmp_path):
    workers = len(os.sched_getaffinity(0)) + 1
    result = run_site(tmp_path, ONE_HOST, "-e", f"ray_cluster_workers={workers}", "-e", "ray_cluster_worker_cpusets=split")
    assert_stopped_early(result, words(f"localhost has {workers - 1} CPU(s) for {workers} workers"),
                         words("set ray_cluster_worker_cpusets: none"))


@pytest.mark.parametrize("variable", ["ray_cluster_bind_address", "ray_cluster_serve_bind_address"])
def test_bind_address_not_ip(tmp_path, variable):
    result = run_site(tmp_path, ONE_HOST, "-e", f"{variable}=localhost")
    assert_stopped_early(result, rf"{variable} is 'localhost', which is not an IP address", r"Use\s+127.0.0.1")


def test_control_port_in_use(tmp_path):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        result = run_site(tmp_path, ONE_HOST, "-e", f"ray_dashboard_port={port}")
    assert_stopped_early(result, rf"Port {port} \(dashboard\) on 127.0.0.1 is already in\s+use", r"set ray_dashboard_port to a free port")


def test_unknown_ray_version(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", "ray_version=9.9.9")
    assert_stopped_early(result, r"ray_version=9.9.9 has no entry in ray_releases", r"Known-good\s+versions: 2.60.0, 2.52.1")


def test_known_bad_ray_vllm_pair(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", "ray_image_flavour=vllm", "-e", "ray_version=2.52.1",
                      "-e", "ray_vllm_version=0.11.2")
    assert_stopped_early(result, words("Ray 2.52.1 with vLLM 0.11.2 is known to break"), words("ray issue #58960"),
                         words("init_app_state()"), words("Use vLLM 0.11.0"), words("set ray_vllm_pair_override=true"))


def test_unknown_ray_vllm_pair(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", "ray_image_flavour=vllm", "-e", "ray_vllm_version=0.28.0")
    assert_stopped_early(result, words("Ray 2.60.0 with vLLM 0.28.0 is not a known-good pair"), words("Use vLLM 0.29.0"),
                         words("set ray_vllm_pair_override=true"))


def test_unknown_image_flavour(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", "ray_image_flavour=gpu")
    assert_stopped_early(result, r"ray_image_flavour", r"cpu, vllm")


# --- GPUs: a stand-in nvidia-smi prints the reference host's answers (three GPUs).

def fake_nvidia_smi(tmp_path: Path) -> str:
    smi = tmp_path / "nvidia-smi"
    fixture = ROOT / "tests/unit/fixtures/nvidia-smi/reference-3gpu-query-gpu.txt"
    smi.write_text(f"#!/bin/sh\ncase \"$1\" in --query-gpu=*) cat {fixture};; esac\n")
    smi.chmod(0o755)
    return str(smi)


def test_gpu_not_on_the_host(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", f"ray_gpu_nvidia_smi={fake_nvidia_smi(tmp_path)}",
                      "-e", '{"ray_gpus": [0, 5]}')
    assert_stopped_early(result, r"ray_gpus asks for GPU 5 on localhost, which it does not have; its GPUs are 0, 1, 2")


@pytest.mark.parametrize("gpus", ["[0, 0]", "[[0, 2], [2]]"])
def test_same_gpu_for_two_workers(tmp_path, gpus):
    result = run_site(tmp_path, ONE_HOST, "-e", f"ray_gpu_nvidia_smi={fake_nvidia_smi(tmp_path)}",
                      "-e", f'{{"ray_gpus": {gpus}}}')
    assert_stopped_early(result, r"ray_gpus gives GPU (0|2) to more than one worker on localhost",
                         r"each GPU may serve one worker only")


def test_gpus_asked_for_without_a_driver(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", f"ray_gpu_nvidia_smi={tmp_path / 'no-nvidia-smi'}",
                      "-e", '{"ray_gpus": [0, 2]}')
    assert_stopped_early(result, r"GPUs were asked for \(ray_gpus is \[0, 2\]\) but this host has no working NVIDIA driver",
                         r"Install the NVIDIA driver", r"ray_gpus: \[\] for CPU workers")


# --- GCS fault tolerance

def test_reconnect_timeout_shorter_than_a_restart(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", "ray_cluster_gcs_reconnect_timeout=20")
    assert_stopped_early(result, r"ray_cluster_gcs_reconnect_timeout is 20 s, but stopping a\s+node may take 45 s",
                         r"the workers would give up on a restarting head and die")


def test_unknown_gcs_storage(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", "ray_gcs_storage=etcd")
    assert_stopped_early(result, r"ray_gcs_storage", r"rocksdb, redis(,| or) none")


@pytest.mark.parametrize("password, why", [
    ("short-secret", r"is 12 characters long;"),
    ("a long password with spaces", r"is 27 characters long\s+and holds spaces or characters outside printable ASCII;"),
])
def test_bad_redis_password(tmp_path, password, why):
    result = run_site(tmp_path, ONE_HOST, "-e", "ray_gcs_storage=redis",
                      "-e", json.dumps({"ray_cluster_redis_password": password}))
    assert_stopped_early(result, r"ray_cluster_redis_password " + why,
                         r"at least 16 printable ASCII characters without spaces", r"openssl rand -hex 16")
    # The message names its length, never the password itself.
    assert password not in result.stdout + result.stderr


# Clusters across hosts (host networking). Forced on one host, the same checks run.
HOST_NET = ("-e", "ray_cluster_network_mode=host")


def test_node_ip_not_an_address_of_the_host(tmp_path):
    result = run_site(tmp_path, ONE_HOST, *HOST_NET, "-e", "ray_cluster_node_ip=192.0.2.10")
    assert_stopped_early(result, r"ray_cluster_node_ip of\s+localhost is '192.0.2.10', which is not an IP address of that host",
                         r"Set ray_cluster_node_ip for localhost to the\s+address the other hosts")


def test_overlapping_port_sets_on_one_host(tmp_path):
    result = run_site(tmp_path, ONE_HOST, *HOST_NET, "-e", "ray_cluster_worker_ports=300")
    assert_stopped_early(result, r"localhost: the ports of ray-head \(20000-20305\) and ray-worker-1 \(20200-20505\) overlap",
                         r"Every node on a host needs its own ports")


def test_fixed_port_inside_a_port_set(tmp_path):
    result = run_site(tmp_path, ONE_HOST, *HOST_NET, "-e", "ray_cluster_ports_base=7900")
    # With the gateway on (the default) Serve's proxies take 8001, the gateway 8000.
    assert_stopped_early(result, r"localhost: Serve HTTP port 8001 lies in the ports of ray-head \(7900-8099\)",
                         r"localhost: gateway port 8000 lies in the ports of ray-head \(7900-8099\)")


def test_bridge_network_across_hosts(tmp_path):
    inventory = (f"[ray_head]\nlocalhost {LOCAL}\n[ray_workers]\n"
                 f"other-host ansible_host=127.0.0.1 {LOCAL}\n")
    result = run_site(tmp_path, inventory, "-e", "ray_cluster_network_mode=bridge")
    assert_stopped_early(result, r"not bridge for a cluster on 2 hosts\s+\(localhost, other-host\)",
                         r"a Compose bridge network does not span hosts")


@pytest.mark.parametrize("extra, why", [
    ({}, r"without a scheme \(got ''\)"),
    ({"ray_image_registry": "https://registry.example.com/ray"}, r"\(got 'https://registry.example.com/ray'\)"),
    ({"ray_image_registry": "registry.example.com:5000/ray", "ray_image_registry_username": "ci"},
     r"must be set together or not at all"),
])
def test_bad_registry_settings(tmp_path, extra, why):
    result = run_site(tmp_path, ONE_HOST, "-e", json.dumps({"ray_image_distribution": "registry", **extra}))
    assert_stopped_early(result, r"ray_image_distribution is registry on localhost, so ray_image_registry must name", why)


def test_two_registries(tmp_path):
    pull = f"{LOCAL} ray_image_distribution=registry ray_image_registry"
    inventory = (f"[ray_head]\nlocalhost {LOCAL}\n[ray_workers]\n"
                 f"host-a ansible_host=127.0.0.1 {pull}=a.example.com/ray\n"
                 f"host-b ansible_host=127.0.0.1 {pull}=b.example.com/ray\n")
    result = run_site(tmp_path, inventory)
    assert_stopped_early(result, r"name different registries\s+\(host-a: a.example.com/ray, host-b: b.example.com/ray\)",
                         r"Set ray_image_registry once for them")


def test_unknown_image_distribution(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", "ray_image_distribution=rsync")
    # The role's argument spec names the choices.
    assert_stopped_early(result, r"ray_image_distribution must be one of: copy, build, registry, got: rsync")


GATEWAY = {"ray_gateway_enabled": True}


def test_bad_gateway_keys(tmp_path):
    same = "k" * 40
    keys = {"empty": "", "short": "s" * 31, "team-a": same, "team-b": same, "spaced": "a b" + "c" * 40}
    result = run_site(tmp_path, ONE_HOST, "-e", json.dumps({**GATEWAY, "ray_gateway_api_keys": keys}))
    assert_stopped_early(result, r"the key of empty is empty", r"the key of short is shorter than 32 characters",
                         r"team-a and team-b have the same key", r"the key of spaced has a character outside",
                         r"openssl rand -hex 24")
    # The message names keys, never shows them.
    assert same not in result.stdout + result.stderr


def test_gateway_port_collides(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", json.dumps({**GATEWAY, "ray_gateway_port": 8265}))
    assert_stopped_early(result, r"ray_gateway_port \(8265\) is also ray_dashboard_port",
                         r"change\s+ray_gateway_port or ray_gateway_metrics_port")


def test_gateway_port_is_serve_port_with_host_networking(tmp_path):
    # On the host's network the gateway and Serve's proxies share the host's
    # ports (ray_serve_port is 8001 by default with the gateway on).
    result = run_site(tmp_path, ONE_HOST, *HOST_NET, "-e", json.dumps({**GATEWAY, "ray_serve_port": 8000}))
    assert_stopped_early(result, r"ray_gateway_port \(8000\) is also ray_serve_port",
                         r"with host networking, ray_serve_port \(the port of Serve's\s+proxies behind the gateway, for example 8001\)")


def test_gateway_host_outside_the_cluster(tmp_path):
    result = run_site(tmp_path, ONE_HOST, "-e", json.dumps({"ray_gateway_hosts": ["localhost", "gw-elsewhere"]}))
    assert_stopped_early(result, r"gw-elsewhere\s+is not a host of the cluster \(localhost\)",
                         r"list inventory names of ray_head or ray_workers")


def test_gateway_hosts_without_the_head(tmp_path):
    inventory = (f"[ray_head]\nlocalhost {LOCAL}\n[ray_workers]\n"
                 f"other-host ansible_host=127.0.0.1 {LOCAL}\n")
    result = run_site(tmp_path, inventory, "-e", json.dumps({"ray_gateway_hosts": ["other-host"]}))
    assert_stopped_early(result, r"It must hold the head's host, localhost: serve.yml and loadtest.yml reach the\s+endpoint there")


@pytest.mark.parametrize("extra, why", [
    ({"ray_monitoring_retention": "2 weeks"}, r"ray_monitoring_retention \(2 weeks\) and ray_monitoring_scrape_interval"
                                              r"\s+\(10s\) must be Prometheus durations"),
    ({"ray_prometheus_port": 8265, "ray_grafana_port": 8000},
     r"ray_prometheus_port \(8265\) is also ray_dashboard_port; ray_grafana_port \(8000\) is also ray_gateway_port\s+on\s+localhost"),
    ({"ray_monitoring_grafana_admin_password": "admin-admin"},
     r"ray_monitoring_grafana_admin_password has 11 characters; it needs\s+at least 16"),
], ids=["retention", "ports", "grafana-password"])
def test_bad_monitoring_settings(tmp_path, extra, why):
    result = run_site(tmp_path, ONE_HOST, "-e", json.dumps({"ray_monitoring_enabled": True, **extra}))
    assert_stopped_early(result, why)


@pytest.fixture(scope="module")
def certificates(tmp_path_factory):
    """Two self-signed certificates with their keys: a.crt/a.key, b.crt/b.key."""
    folder = tmp_path_factory.mktemp("tls")
    for name in "ab":
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", f"/CN={name}",
                        "-keyout", str(folder / f"{name}.key"), "-out", str(folder / f"{name}.crt")],
                       check=True, capture_output=True)
    return folder


def test_gateway_certificate_without_key(tmp_path, certificates):
    extra = {**GATEWAY, "ray_gateway_tls_certificate": str(certificates / "a.crt")}
    assert_stopped_early(run_site(tmp_path, ONE_HOST, "-e", json.dumps(extra)),
                         r"ray_gateway_tls_certificate is set but ray_gateway_tls_key is not", r"give both")


def test_gateway_key_of_another_certificate(tmp_path, certificates):
    extra = {**GATEWAY, "ray_gateway_tls_certificate": str(certificates / "a.crt"),
             "ray_gateway_tls_key": str(certificates / "b.key")}
    assert_stopped_early(run_site(tmp_path, ONE_HOST, "-e", json.dumps(extra)),
                         r"ray_gateway_tls_key \(\S+b.key\) is not the key of\s+ray_gateway_tls_certificate",
                         r"give the key the certificate was issued for")
