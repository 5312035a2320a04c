#!/usr/bin/env bash
# Multi-host GPU placement against a real nvidia-smi, on a GPU machine without
# Docker: one machine plays a head host, a GPU worker host (GPU discovery,
# per_gpu layout) and a CPU worker host; each host's Compose file is rendered
# in host-network mode and the per-host health expectations are printed.
#   tests/device/multihost-gpu-check.sh CARRY_DIR OUT_DIR
# CARRY_DIR holds ansible-core's wheels and collections/ansible_collections/ansible/utils.
set -uo pipefail
cd "$(dirname "$0")/../.."
carry=$1; out=$2; mkdir -p "$out"
. tests/device/venv.sh && device_venv "$carry" || exit 1
smi=${NVIDIA_SMI:-nvidia-smi}
cat > "$out/hosts.ini" <<INI
[ray_head]
head-host ansible_connection=local ansible_python_interpreter=$py
[ray_workers]
gpu-host ansible_connection=local ansible_python_interpreter=$py ray_gpu_nvidia_smi=$smi
cpu-host ansible_connection=local ansible_python_interpreter=$py ray_gpus=[] ray_cluster_workers=2
INI
echo "== nvidia-smi -L"; "$smi" -L
echo "== render every host's Compose file"
ansible-playbook -i "$out/hosts.ini" tests/integration/render-compose.yml -e render_dir="$out" -e ray_project_dir=/tmp/mh-project
echo "rc=$?"
cat "$out/expected.json"
for host in head-host gpu-host cpu-host; do
  echo "== $host: network mode, node address and ports, GPUs"
  grep -nE 'network_mode|node-ip-address|--address=|--node-manager-port|--num-gpus|device_ids|NVIDIA_VISIBLE' "$out/$host.compose.yaml"
done
