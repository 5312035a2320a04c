#!/usr/bin/env bash
# Regenerate the hash-checked lock of the load generator (Locust), installed
# into a venv on the head host by the ray_loadtest role:
#   scripts/lock-locust.sh            write the lock for ray_loadtest_locust_version
#   scripts/lock-locust.sh --check    resolve again and compare with the committed lock
# Universal: Python 3.10+ (Ubuntu 22.04 to Debian 13), any Linux arch.
set -euo pipefail
cd "$(dirname "$0")/.."
read -r version cutoff < <(python3 -c 'import yaml; d = yaml.safe_load(open("roles/ray_loadtest/defaults/main.yml")); print(d["ray_loadtest_locust_version"], d["ray_loadtest_lock_cutoff"])')
lock="roles/ray_loadtest/files/locks/locust-${version}.txt"
# Resolve from scratch into a temporary file, in both modes: uv keeps the pins
# of an existing output file, so writing over the lock would keep old pins
# that a fresh resolution (the check) no longer picks.
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT
echo "locust==${version}" |
  uv pip compile --quiet --universal --python-version 3.10 --generate-hashes \
    --exclude-newer "$cutoff" --custom-compile-command "scripts/lock-locust.sh" - -o "$tmp"
if [ "${1:-}" = "--check" ]; then
  if ! diff -u "$lock" "$tmp"; then
    echo "$lock no longer matches a fresh resolution (packages no newer than $cutoff): regenerate it with scripts/lock-locust.sh" >&2
    exit 1
  fi
  echo "$lock resolves as committed"
else
  mv "$tmp" "$lock"
  chmod 0644 "$lock"
  echo "wrote $lock (packages no newer than $cutoff)"
fi
