#!/usr/bin/env bash
# Set up the controller, then bring up the cluster described by the inventory:
#   scripts/site.sh [ansible-playbook options...]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bootstrap.sh
exec ansible-playbook site.yml "$@"
