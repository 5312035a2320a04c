#!/usr/bin/env bash
# Prints the extra vars (YAML) for the vllm-cpu image on this machine: torch's
# CPU build from pip's local wheel directory where pip has one with it (CI
# here, air-gapped hosts), else from the PyTorch CPU index (the role's
# default). Used by scripts/test.sh and scripts/benchmark.py.
set -euo pipefail
links="$(pip config get global.find-links 2>/dev/null || true)"
echo "ray_image_flavour: vllm-cpu"
if [ -n "$links" ] && compgen -G "$links/torch-*+cpu-*.whl" >/dev/null; then
  printf 'ray_image_pip_wheel_dir: %s\nray_image_pip_extra_index_urls: []\n' "$links"
fi
