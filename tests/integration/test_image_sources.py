"""Where each host's image comes from, planned by image.yml in check mode.

Four inventory hosts on this machine (connection local, one Docker engine)
and an image name that exists nowhere: the head builds, a `build` host
builds too, a `copy` host gets the head's image through the controller, a
`registry` host pulls what the head pushes to the registry it names. Check
mode prints that plan for each host and creates nothing. The real copy and
registry runs are in molecule/multihost.
"""
from __future__ import annotations

import re

from helpers import LOCAL, ok, playbook, sh, words

REPOSITORY = "ray-compose-test/sources"
REGISTRY = "registry.example.com:5000/ci"


def test_each_host_gets_the_image_its_way(tmp_path):
    inventory = (f"[ray_head]\nhead-host {LOCAL}\n[ray_workers]\ncopy-host {LOCAL}\n"
                 f"build-host {LOCAL} ray_image_distribution=build\n"
                 # Only the host that pulls names the registry: the head pushes there.
                 f"registry-host {LOCAL} ray_image_distribution=registry ray_image_registry={REGISTRY}\n")
    result = playbook(tmp_path, "playbooks/image.yml", "--check", "-e", f"ray_image_repository={REPOSITORY}",
                      "-e", "ray_image_flavour=cpu", inventory_text=inventory)
    out = ok(result)
    ref = re.search(rf"({re.escape(REPOSITORY)}:\S+-cpu) would be built", out).group(1)
    built = re.findall(rf"{re.escape(ref)} would be built on (\S+)", out)
    assert sorted(built) == ["build-host", "head-host"], out[-4000:]
    assert re.search(words(f"{ref} would be copied from head-host to copy-host."), out), out[-4000:]
    assert re.search(words(f"head-host would push {REGISTRY}/{ref}, and registry-host would pull it."), out), out[-4000:]
    # Nothing was built, saved or created.
    assert sh("docker", "image", "inspect", ref).returncode != 0
    assert not (tmp_path / "project").exists()
