#!/usr/bin/env bash
# The whole test suite: lint, unit tests, bad input, the vllm flavour, a live
# cluster on this host (with vLLM on CPU serving a tiny Qwen3), Molecule end to end.
#   scripts/test.sh            everything: the preflight beside the images
#                              first, then the cluster stage beside the
#                              short stages and the two Molecule scenarios (lanes)
#   scripts/test.sh STAGE ...  these stages, one after another; STAGE is one of
#                              lint unit preflight images vllm gpu cluster molecule multihost
# Sets up everything it needs on a fresh Debian 12/13 or Ubuntu 22.04/24.04
# host, as root: Python venv, Docker engine (through the docker_engine role),
# the locally built images.
# At the end, pass or fail, it prints each stage's time and the five slowest
# tasks and tests. A guard stops the run after RAY_COMPOSE_TEST_DEADLINE
# seconds (4800) and names the slowest stages.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/bootstrap.sh

# One folder per run, shared with the lanes: stage times, task and test times
# (plugins/callback/ray_compose_timings.py, tests/conftest.py), the image archives.
if [ -z "${RAY_COMPOSE_TEST_RUN:-}" ]; then
  RAY_COMPOSE_TEST_RUN="$(mktemp -d /var/tmp/ray-compose-test.XXXXXX)"
  export RAY_COMPOSE_TEST_RUN RAY_COMPOSE_TIMINGS="$RAY_COMPOSE_TEST_RUN/tasks.tsv"
  test_main=1
fi
# The images saved once by the images stage: the Molecule hosts load these and
# the archive test uses ray.tar, so no lane reads an image tag another removes.
# Looked for as each stage starts: the lanes start before the images stage ends.
images_dir="$RAY_COMPOSE_TEST_RUN/images"
find_image_archives() {
  if [ -f "$images_dir/ray.tar" ] && [ -f "$images_dir/redis.tar" ]; then
    export RAY_COMPOSE_IMAGE_ARCHIVES="$images_dir"
  fi
}

# The vllm-cpu image's settings for this machine (torch's CPU build from a
# local wheel directory or the PyTorch CPU index), with Prometheus on; no
# Grafana, whose image is on Docker Hub (its provisioning is still written,
# and checked). The cluster stage's real-engine phase runs with them, behind
# the gateway (on by default).
vllm_phase_vars="$RAY_COMPOSE_TEST_RUN/vllm-cpu.yml"
write_vllm_phase_vars() {
  { scripts/lib/vllm-cpu-vars.sh; printf 'ray_monitoring_enabled: true\nray_grafana_enabled: false\n'; } > "$vllm_phase_vars"
}

# A tiny random-weight Qwen3 checkpoint where the catalog's Qwen3-0.6B looks
# for weights; never over real weights.
test_checkpoint=/Models/Pretrained_Models/Qwen3-0.6B
make_test_checkpoint() {
  if [ -e "$test_checkpoint/config.json" ] && [ ! -e "$test_checkpoint/RAY_COMPOSE_TEST_CHECKPOINT" ]; then
    echo "$test_checkpoint holds other weights; the test puts its tiny checkpoint there. Move them away first." >&2
    return 1
  fi
  install -d -o 1000 -g 1000 "$test_checkpoint"
  docker run --rm -i -u 1000:1000 -v "$test_checkpoint:/out" --entrypoint python "$1" - /out < scripts/make-test-checkpoint.py
  touch "$test_checkpoint/RAY_COMPOSE_TEST_CHECKPOINT"
}
remove_test_checkpoint() {
  [ ! -e "$test_checkpoint/RAY_COMPOSE_TEST_CHECKPOINT" ] || rm -rf "$test_checkpoint"
}

ensure_docker() {
  # The CI host's own engine, installed and started by our own role, once a run.
  [ -e "$RAY_COMPOSE_TEST_RUN/docker.done" ] && return 0
  ansible-playbook -i molecule/resources/controller.ini playbooks/docker.yml >/dev/null
  touch "$RAY_COMPOSE_TEST_RUN/docker.done"
}

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
  # Before any cluster holds the ports these cases check.
  echo "== preflight (bad input stops site.yml before any change)"
  python -m pytest -q tests/integration/test_bad_input.py
}

run_images() {
  echo "== images (the Ray, Redis and Molecule platform images, built once for every stage and saved for the lanes; the vllm-cpu, gateway and Prometheus images)"
  ensure_docker
  ansible-playbook molecule/resources/images.yml -e "images_dir=$images_dir" >/dev/null
  molecule/resources/build-platform-image.sh
  # Rebuilt only when its inputs change: about 3 minutes and 3.7 GB the first time.
  write_vllm_phase_vars
  ansible-playbook playbooks/image.yml -e @"$vllm_phase_vars" >/dev/null
}

run_vllm() {
  echo "== vllm flavour (its locks resolve; its Dockerfile builds on a stub base; its Compose file validates)"
  ensure_docker
  python -m pytest -q tests/integration/test_vllm_flavour.py
}

run_gpu() {
  echo "== gpu (placement from recorded nvidia-smi answers; the Compose files validate; each host's image source, planned in check mode; Prometheus's and Grafana's Compose file)"
  ensure_docker
  python -m pytest -q tests/integration/test_gpu_placement.py tests/integration/test_image_sources.py \
    tests/integration/test_monitoring_render.py
}

# Waits until a stage of this run that has started ends; fails if it failed.
# A stage this run does not hold (scripts/test.sh cluster) is not waited for.
wait_for_stage() {
  local stages="$RAY_COMPOSE_TEST_RUN/stages.tsv" rc
  grep -q "^start	$1	" "$stages" 2>/dev/null || return 0
  until rc="$(awk -F'\t' -v s="$1" '$1 == "end" && $2 == s {print $4}' "$stages")" && [ -n "$rc" ]; do sleep 2; done
  [ "$rc" = 0 ] || { echo "the $1 stage failed; the $RAY_COMPOSE_STAGE stage needs it" >&2; return 1; }
}

# Debian's headless Chromium opens the dashboard's Serve page
# (test_dashboard_page.py); Ubuntu ships Chromium as a snap only, and the check skips there.
ensure_chromium() {
  command -v chromium >/dev/null && return 0
  [ "$(. /etc/os-release && echo "$ID")" = debian ] || return 0
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null
}

run_cluster() {
  wait_for_stage images
  find_image_archives
  ensure_chromium
  echo "== cluster (site.yml and serve.yml on this host, as the README runs them; bad input for serve.yml and loadtest.yml; faults: a head with a new IP, GCS storage in Redis (with the image from an air-gapped archive); then the real engine: vLLM on CPU serves Qwen3 under load and through a head restart)"
  trap 'ansible-playbook playbooks/teardown.yml -e ray_teardown_purge=true >/dev/null 2>&1 || true; remove_test_checkpoint' EXIT
  # A GCS storage directory the Ray user cannot write: the role fixes it.
  install -d -o root -g root -m 0755 /opt/ray-cluster/gcs
  ansible-playbook site.yml
  [ "$(stat -c '%u:%g %a' /opt/ray-cluster/gcs /opt/ray-cluster/gcs/rocksdb | sort -u)" = "1000:1000 700" ] \
    || { echo "GCS directory not fixed" >&2; return 1; }
  ansible-playbook serve.yml -e model=echo-cpu
  RAY_COMPOSE_LIVE=1 python -m pytest -q --durations=5 tests/integration/test_serve_bad_input.py tests/integration/test_loadtest_bad_input.py \
    tests/integration/test_loadtest_interrupt.py tests/integration/test_recorded_answers.py \
    tests/integration/test_dashboard_page.py
  # -s: they print what the faults looked like. Redis comes last: it switches
  # storage, and its move finds the image's name removed (the air-gapped
  # archive). Its part runs with the gateway off (the opt-out); its last test
  # moves the cluster back to RocksDB, onto the vllm-cpu image and behind the
  # gateway in one run of site.yml.
  [ -f "$vllm_phase_vars" ] || write_vllm_phase_vars
  RAY_COMPOSE_LIVE=1 RAY_COMPOSE_NEXT_IMAGE_VARS="$vllm_phase_vars" python -m pytest -q -s --durations=5 \
    tests/integration/test_head_new_ip.py tests/integration/test_gcs_redis.py
  # The load generator's lock still resolves as committed.
  scripts/lock-locust.sh --check

  echo "-- the real engine behind the gateway: the same cluster, now on the vllm-cpu image with the gateway on port 8000; Qwen3-0.6B from a tiny test checkpoint"
  make_test_checkpoint "$(docker inspect --format '{{.Config.Image}}' ray-head)"
  RAY_COMPOSE_LIVE=1 RAY_COMPOSE_LIVE_VLLM=1 python -m pytest -q --durations=5 tests/integration/test_vllm_bad_input.py
  # Qwen3-0.6B wants / too.
  ansible-playbook serve.yml -e @"$vllm_phase_vars" -e model=echo-cpu -e ray_serve_state=absent
  ansible-playbook serve.yml -e @"$vllm_phase_vars" -e model=Qwen3-0.6B
  # The openai client, a Locust load that scales 1 -> 2 -> 1, a head restart;
  # Prometheus's targets and metrics after those requests; then the gateway's
  # keys, secrecy, re-run, a head crash and a key rotation.
  RAY_COMPOSE_LIVE=1 RAY_COMPOSE_LIVE_VLLM=1 RAY_COMPOSE_IMAGE_VARS="$vllm_phase_vars" python -m pytest -q -s --durations=5 \
    tests/integration/test_vllm_cpu_serving.py tests/integration/test_monitoring.py tests/integration/test_gateway.py
  # A teardown without purge removes every container of the project
  # (Prometheus's and the gateway's too) and keeps the logs and Prometheus's data.
  ansible-playbook playbooks/teardown.yml >/dev/null
  local left
  left="$(docker ps -a --format '{{.Names}} {{.Label "com.docker.compose.project"}}' | grep -E ' ray(-monitoring|-gateway)?$' || true)"
  [ -z "$left" ] || { echo "teardown left these containers: $left" >&2; return 1; }
  [ -n "$(ls -A /opt/ray-cluster/monitoring/data)" ] && [ -n "$(ls -A /opt/ray-cluster/logs/ray-head)" ] \
    || { echo "teardown did not keep Prometheus's data and the logs" >&2; return 1; }
  echo "teardown without purge: no container left; Prometheus's data ($(du -sh /opt/ray-cluster/monitoring/data | cut -f1)) and the logs kept"
  ansible-playbook playbooks/teardown.yml -e ray_teardown_purge=true
  remove_test_checkpoint
  trap - EXIT
}

# The scenarios' shared settings, also outside a Git checkout (where Molecule
# would not look for them).
molecule_base=(--base-config .config/molecule/config.yml)

run_molecule() {
  echo "== molecule (end to end on a real Docker engine)"
  ensure_docker
  molecule/resources/build-platform-image.sh
  docker volume rm -f ray-molecule-docker >/dev/null 2>&1 || true
  trap 'molecule "${molecule_base[@]}" destroy >/dev/null 2>&1 || true; docker volume rm -f ray-molecule-docker >/dev/null 2>&1 || true' EXIT
  molecule "${molecule_base[@]}" test
  trap - EXIT
  docker volume rm ray-molecule-docker >/dev/null
  # Nothing of the test may outlive it: no container, no volume.
  local leftovers
  leftovers="$(docker ps -aq --filter label=owner=molecule --filter name=ray-host; docker volume ls -q --filter name=ray-molecule-docker)"
  [ -z "$leftovers" ] || { echo "molecule left these behind: $leftovers" >&2; return 1; }
}

run_multihost() {
  echo "== multihost (a cluster across three Docker-in-Docker hosts on one network, and a non-member)"
  ensure_docker
  molecule/resources/build-platform-image.sh
  local volumes=(ray-mh-head-docker ray-mh-worker1-docker ray-mh-worker2-docker)
  docker volume rm -f "${volumes[@]}" >/dev/null 2>&1 || true
  trap 'molecule "${molecule_base[@]}" destroy -s multihost >/dev/null 2>&1 || true; docker volume rm -f '"${volumes[*]}"' >/dev/null 2>&1 || true' EXIT
  molecule "${molecule_base[@]}" test -s multihost
  trap - EXIT
  docker volume rm "${volumes[@]}" >/dev/null
  local leftovers
  leftovers="$(docker ps -aq --filter label=owner=molecule --filter name=mh-; docker network ls -q --filter name=ray-multihost)"
  [ -z "$leftovers" ] || { echo "molecule left these behind: $leftovers" >&2; return 1; }
}

# Waits for a pid through signals that interrupt `wait`; returns its status.
wait_pid() {
  local rc
  while :; do
    wait "$1" && return 0 || rc=$?
    kill -0 "$1" 2>/dev/null || return "$rc"
  done
}

# A lane: its stages one after another, up to the first failure. Each stage
# runs in a subshell of its own, so that `set -e` holds inside it and a
# SIGTERM from the guard still runs its cleanup trap.
run_stages() {
  local stage rc
  trap 'echo "stopped by the guard" >&2' TERM
  for stage in "$@"; do
    printf 'start\t%s\t%s\n' "$stage" "$(date +%s)" >> "$RAY_COMPOSE_TEST_RUN/stages.tsv"
    ( trap 'exit 143' TERM; export RAY_COMPOSE_STAGE="$stage"; find_image_archives; "run_$stage" ) &
    wait_pid $! && rc=0 || rc=$?
    printf 'end\t%s\t%s\t%s\n' "$stage" "$(date +%s)" "$rc" >> "$RAY_COMPOSE_TEST_RUN/stages.tsv"
    [ "$rc" = 0 ] || { echo "stage $stage failed (exit $rc)" >&2; return "$rc"; }
  done
}

if [ -z "${test_main:-}" ]; then
  # A lane started by the main run below: its own session, so that the guard
  # can stop all of it.
  echo $$ > "$RAY_COMPOSE_TEST_RUN/lane-$1.pid"
  shift
  run_stages "$@"
  exit
fi

# Pass or fail: the stage times (a stage still running when the guard hit shows
# its time so far) and the five slowest tasks and tests of the whole run.
report() {
  local status=$?
  [ -z "${guard_pid:-}" ] || kill -- "-$guard_pid" 2>/dev/null || true
  echo
  python3 scripts/lib/test_report.py "$RAY_COMPOSE_TEST_RUN" "${guard_hit:+$deadline}" || true
  # CI keeps only the end of the output, where the other lane's lines may
  # have buried a failure: each failed lane's last lines again, last.
  local log
  for log in "$RAY_COMPOSE_TEST_RUN"/lane-*.log; do
    [ -f "$log" ] && [ "$(cat "${log%.log}.rc" 2>/dev/null)" != 0 ] || continue
    echo
    echo "== the last 80 lines of the failed lane $(basename "$log" .log | sed 's/^lane-//')"
    tail -n 80 "$log"
  done
  if [ -n "${guard_hit:-}" ]; then
    echo "FAILED: the run passed the guard of ${deadline} s (RAY_COMPOSE_TEST_DEADLINE); CI stops at 5400 s" >&2
    status=1
  fi
  rm -rf "$RAY_COMPOSE_TEST_RUN"
  exit "$status"
}
trap report EXIT

# Runs one lane per argument (a space-separated list of stages) side by side,
# each line of output prefixed with the lane's first stage when there are several.
run_lanes() {
  local lane name pids=() names=() rc=0 i
  for lane in "$@"; do
    name="${lane%% *}"
    # shellcheck disable=SC2086 # a lane is a list of stage names
    # The pid file goes with the lane, so that the guard never signals a reused pid.
    { setsid "$0" "$name" $lane 2>&1; echo $? > "$RAY_COMPOSE_TEST_RUN/lane-$name.rc"; rm -f "$RAY_COMPOSE_TEST_RUN/lane-$name.pid"; } \
      | tee "$RAY_COMPOSE_TEST_RUN/lane-$name.log" | if [ "$#" -gt 1 ]; then sed -u "s/^/[$name] /"; else cat; fi &
    pids+=($!) names+=("$name")
  done
  for i in "${!pids[@]}"; do
    wait_pid "${pids[$i]}" || true
    [ "$(cat "$RAY_COMPOSE_TEST_RUN/lane-${names[$i]}.rc" 2>/dev/null)" = 0 ] || rc=1
  done
  return "$rc"
}

deadline="${RAY_COMPOSE_TEST_DEADLINE:-4800}"
guard_hit=
stop_lanes() {
  guard_hit=1
  echo "guard: ${deadline} s passed; stopping every stage" >&2
  local f
  for f in "$RAY_COMPOSE_TEST_RUN"/lane-*.pid; do
    kill -TERM -- "-$(cat "$f")" 2>/dev/null || true  # lanes that ended are gone already
  done
}
trap stop_lanes USR1
# Its own process group, so that the end of the run stops its sleep too.
setsid bash -c 'sleep "$1"; kill -USR1 "$2"' guard "$deadline" $$ </dev/null >/dev/null 2>&1 &
guard_pid=$!

if [ "$#" -gt 0 ]; then
  run_lanes "$*"
else
  # Two lanes, not three: on 2 cores a third Ray cluster slowed every lane
  # two- to threefold. The preflight's port checks run before the cluster
  # stage holds those ports; the cluster stage also waits for the images
  # (wait_for_stage). Molecule's hosts publish no port, so the other lane
  # starts at once: the images, the short stages, then the two scenarios.
  run_lanes "preflight cluster" "images lint unit vllm gpu molecule multihost"
fi
echo "all stages passed"
