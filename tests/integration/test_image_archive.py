"""Air-gapped image: with ray_image_archive_src, a host that lacks the image
loads it from a `docker save` archive on the controller and builds nothing.

Runs against the live cluster of the default inventory (scripts/test.sh's
`cluster` stage). The image's tag is removed (the running containers keep the
image itself); site.yml must bring it back from the archive, build nothing and
recreate no container, and a second run must change nothing. The archive is
the one scripts/test.sh's images stage saved (RAY_COMPOSE_IMAGE_ARCHIVES), so
no other lane reads the tag while it is gone; else it is saved here.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from e2e.faults import docker
from helpers import ok, run_playbook

pytestmark = pytest.mark.usefixtures("live_cluster")

NODES = ("ray-head", "ray-worker-1", "ray-worker-2")


def started_at() -> dict[str, str]:
    return {name: docker("inspect", "-f", "{{.State.StartedAt}}", name).strip() for name in NODES}


def test_archive_brings_back_a_missing_image(tmp_path):
    image = docker("inspect", "-f", "{{.Config.Image}}", "ray-head").strip()
    image_id = docker("image", "inspect", "-f", "{{.Id}}", image).strip()
    before = started_at()
    # scripts/test.sh saved the image once for every lane; saved here otherwise.
    archive = Path(os.environ.get("RAY_COMPOSE_IMAGE_ARCHIVES") or tmp_path) / "ray.tar"
    if not archive.exists():
        docker("save", "-o", str(archive), image)
    docker("image", "rm", "--force", image)  # only the name goes: the running containers hold the image
    assert docker("image", "ls", "-q", image).strip() == ""

    archived = ("-e", f"ray_image_archive_src={archive}")
    out = ok(run_playbook("site.yml", *archived))
    assert re.search(r"TASK \[ray_image : Load the image\][^\n]*\nchanged: \[localhost\]", out), out[-3000:]
    assert "TASK [ray_image : Render the Dockerfile]" not in out, "built although an archive was given"
    assert docker("image", "inspect", "-f", "{{.Id}}", image).strip() == image_id
    assert started_at() == before, "a node was recreated"

    again = ok(run_playbook("site.yml", *archived))
    assert re.search(r"localhost\s*:\s*ok=\d+\s+changed=0\b", again), again[-3000:]
