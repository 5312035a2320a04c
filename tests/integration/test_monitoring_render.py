"""What Compose would run for Prometheus and Grafana (ray_monitoring), rendered
from the role's own templates without starting anything: CI cannot pull
Grafana's image (test_monitoring.py checks the running Prometheus and the
provisioning on the live cluster)."""
from __future__ import annotations

import json

import pytest
import yaml

from helpers import ok, playbook, sh

PASSWORD = "a-grafana-password-" + "x" * 8


def render(tmp_path, network: str, *extra: str) -> tuple[dict, str, dict]:
    """The Compose file as `docker compose config` reads it, its text, and the data source."""
    secrets = tmp_path / "project/secrets"
    secrets.mkdir(parents=True)
    (secrets / "grafana_admin_password").write_text(PASSWORD + "\n")
    (tmp_path / "logs/ray-head").mkdir(parents=True)
    ok(playbook(tmp_path, "tests/integration/render-monitoring.yml", "-e", f"render_dir={tmp_path}",
                "-e", f"render_network={network}", "-e", f"ray_monitoring_grafana_admin_password={PASSWORD}", *extra))
    compose = tmp_path / "compose.yaml"
    quiet = sh("docker", "compose", "-f", str(compose), "config", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    cfg = json.loads(sh("docker", "compose", "-f", str(compose), "config", "--format", "json").stdout)
    return cfg, compose.read_text(), yaml.safe_load((tmp_path / "datasource.yml").read_text())["datasources"][0]


@pytest.mark.parametrize("network", ["ray_default", ""], ids=["bridge", "host-network"])
def test_grafana_runs_as_the_ray_user_on_loopback_with_its_password_as_a_secret(tmp_path, network):
    cfg, text, source = render(tmp_path, network)
    grafana = cfg["services"]["ray-grafana"]
    assert grafana["user"] == "1000:1000" and grafana["image"].startswith("grafana/grafana:")
    env = grafana["environment"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false" and env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    assert env["GF_SECURITY_ALLOW_EMBEDDING"] == "true"
    # The password is a file from a Compose secret: not in the Compose file, nor in the environment.
    assert env["GF_SECURITY_ADMIN_PASSWORD__FILE"] == "/run/secrets/grafana_admin_password"
    assert "GF_SECURITY_ADMIN_PASSWORD" not in env and PASSWORD not in text
    assert cfg["secrets"]["grafana_admin_password"]["file"] == str(tmp_path / "project/secrets/grafana_admin_password")
    assert [s["source"] for s in grafana["secrets"]] == ["grafana_admin_password"]
    # It reads Ray's dashboards from the head's /tmp/ray, as Prometheus reads its targets.
    mounts = {v["target"]: (v["source"], v.get("read_only", False)) for v in grafana["volumes"]}
    assert mounts["/tmp/ray"] == (str(tmp_path / "logs/ray-head"), True), mounts
    assert mounts["/etc/ray-grafana/provisioning"][1] is True, mounts
    if network:
        assert {(p["host_ip"], p["published"], p["target"]) for p in grafana["ports"]} == {("127.0.0.1", "3000", 3000)}
        assert source["url"] == "http://ray-prometheus:9090"
    else:
        assert grafana["network_mode"] == "host" and "ports" not in grafana
        assert (env["GF_SERVER_HTTP_ADDR"], env["GF_SERVER_HTTP_PORT"]) == ("127.0.0.1", "3000")
        assert source["url"] == "http://127.0.0.1:9090"
    # The name the Ray dashboard selects (RAY_PROMETHEUS_NAME's default).
    assert (source["name"], source["type"]) == ("Prometheus", "prometheus")


def test_without_grafana_only_prometheus_runs(tmp_path):
    cfg, _, _ = render(tmp_path, "ray_default", "-e", "ray_grafana_enabled=false")
    assert set(cfg["services"]) == {"ray-prometheus"} and "secrets" not in cfg
