#!/usr/bin/env bash
# The whole test suite: lint, unit tests, bad input, the vllm flavour, a live
# cluster on this host, Molecule end to end.
#   scripts/test.sh            everything
#   scripts/test.sh lint|unit|preflight|vllm|gpu|cluster|molecule|multihost ...
# Sets up everything it needs on a fresh Debian 12/13 or Ubuntu 22.04/24.04
# host, as root: Python venv, Docker engine (through the docker_engine role),
# the locally built Molecule platform image.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ "$#" -gt 0 ]; then stages=("$@"); else stages=(lint unit preflight vllm gpu cluster molecule multihost); fi
source scripts/lib/bootstrap.sh

run_lint() {
  echo "== lint"
  yamllint --strict .
  ansible-lint
  for module in library/*.py; do
    ansible-doc -M library "$(basename "$module" .py)" >/dev/null
  done
}

run_unit() {
  echo "== unit tests"
  python -m pytest -q tests/unit
}

run_preflight() {
  echo "== preflight (bad input stops site.yml before any change)"
  python -m pytest -q tests/integration/test_bad_input.py
}

run_vllm() {
  echo "== vllm flavour (its locks resolve; its Dockerfile builds on a stub base; its Compose file validates)"
  # The CI host's own engine, installed and started by our own role.
  ansible-playbook -i molecule/resources/controller.ini playbooks/docker.yml >/dev/null
  python -m pytest -q tests/integration/test_vllm_flavour.py
}

run_gpu() {
  echo "== gpu (placement from recorded nvidia-smi answers; the Compose files validate; each host's image source, planned in check mode)"
  ansible-playbook -i molecule/resources/controller.ini playbooks/docker.yml >/dev/null
  python -m pytest -q tests/integration/test_gpu_placement.py tests/integration/test_image_sources.py
}

run_cluster() {
  echo "== cluster (site.yml and serve.yml on this host, as the README runs them; bad input for serve.yml and loadtest.yml; the image from an air-gapped archive; faults: a head with a new IP, GCS storage off and in Redis)"
  trap 'ansible-playbook playbooks/teardown.yml -e ray_teardown_purge=true >/dev/null 2>&1 || true' EXIT
  # A GCS storage directory the Ray user cannot write: the role fixes it.
  install -d -o root -g root -m 0755 /opt/ray-cluster/gcs
  ansible-playbook site.yml
  [ "$(stat -c '%u:%g %a' /opt/ray-cluster/gcs /opt/ray-cluster/gcs/rocksdb | sort -u)" = "1000:1000 700" ] \
    || { echo "GCS directory not fixed" >&2; return 1; }
  ansible-playbook serve.yml -e model=echo-cpu
  RAY_COMPOSE_LIVE=1 python -m pytest -q --durations=5 tests/integration/test_serve_bad_input.py tests/integration/test_loadtest_bad_input.py \
    tests/integration/test_loadtest_interrupt.py tests/integration/test_image_archive.py
  # -s: they print what the faults looked like. Storage off and Redis come last: they switch storage.
  RAY_COMPOSE_LIVE=1 python -m pytest -q -s --durations=5 tests/integration/test_head_new_ip.py \
    tests/integration/test_gcs_storage_off.py tests/integration/test_gcs_redis.py
  # The load generator's lock still resolves as committed.
  scripts/lock-locust.sh --check
  ansible-playbook playbooks/teardown.yml -e ray_teardown_purge=true
  trap - EXIT
}

run_molecule() {
  echo "== molecule (end to end on a real Docker engine)"
  # The CI host's own engine, installed and started by our own role.
  ansible-playbook -i molecule/resources/controller.ini playbooks/docker.yml
  molecule/resources/build-platform-image.sh
  docker volume rm -f ray-molecule-docker >/dev/null 2>&1 || true
  trap 'molecule destroy >/dev/null 2>&1 || true; docker volume rm -f ray-molecule-docker >/dev/null 2>&1 || true' EXIT
  molecule test
  trap - EXIT
  docker volume rm ray-molecule-docker >/dev/null
  # Nothing of the test may outlive it: no container, no volume.
  local leftovers
  leftovers="$(docker ps -aq --filter label=owner=molecule; docker volume ls -q --filter name=ray-molecule-docker)"
  [ -z "$leftovers" ] || { echo "molecule left these behind: $leftovers" >&2; return 1; }
}

run_multihost() {
  echo "== multihost (a cluster across three Docker-in-Docker hosts on one network, and a non-member)"
  ansible-playbook -i molecule/resources/controller.ini playbooks/docker.yml >/dev/null
  molecule/resources/build-platform-image.sh
  local volumes=(ray-mh-head-docker ray-mh-worker1-docker ray-mh-worker2-docker)
  docker volume rm -f "${volumes[@]}" >/dev/null 2>&1 || true
  trap 'molecule destroy -s multihost >/dev/null 2>&1 || true; docker volume rm -f '"${volumes[*]}"' >/dev/null 2>&1 || true' EXIT
  molecule test -s multihost
  trap - EXIT
  docker volume rm "${volumes[@]}" >/dev/null
  local leftovers
  leftovers="$(docker ps -aq --filter label=owner=molecule; docker network ls -q --filter name=ray-multihost)"
  [ -z "$leftovers" ] || { echo "molecule left these behind: $leftovers" >&2; return 1; }
}

timings=()
for stage in "${stages[@]}"; do
  started=$SECONDS
  "run_$stage"
  timings+=("$stage $((SECONDS - started)) s")
done
echo "all stages passed: ${stages[*]}"
printf 'stage time: %s\n' "${timings[@]}"
