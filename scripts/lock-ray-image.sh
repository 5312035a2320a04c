#!/usr/bin/env bash
# Regenerate the Ray image's dependency lock for one Ray version:
#   scripts/lock-ray-image.sh 2.60.0
# The version and its cut-off date come from roles/ray/defaults/main.yml
# (ray_releases). Needs `uv` (pip install uv). The lock is universal
# (Python 3.10+, any Linux arch) and hash-checked at build time.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:?usage: $0 RAY_VERSION}"
cutoff="$(python3 - "$version" <<'PY'
import sys, yaml
releases = yaml.safe_load(open("roles/ray/defaults/main.yml"))["ray_releases"]
if sys.argv[1] not in releases:
    sys.exit(f"{sys.argv[1]} is not in ray_releases; add it there first")
print(releases[sys.argv[1]]["lock_cutoff"])
PY
)"
out="roles/ray_image/files/locks/ray-${version}.txt"
echo "ray[default,serve]==${version}" |
  uv pip compile --quiet --universal --python-version 3.10 --generate-hashes \
    --exclude-newer "$cutoff" --custom-compile-command "scripts/lock-ray-image.sh ${version}" \
    - -o "$out"
echo "wrote $out (packages no newer than $cutoff)"
