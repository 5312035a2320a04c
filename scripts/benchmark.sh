#!/usr/bin/env bash
# Print speed figures for this machine; see scripts/benchmark.py --help.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bootstrap.sh
exec python scripts/benchmark.py "$@"
