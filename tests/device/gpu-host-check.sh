#!/usr/bin/env bash
# What a GPU machine without Docker or internet can prove: the project's GPU
# discovery (module ray_gpu_info), the toolkit role's driver check and the
# Compose file the ray_cluster role renders, against the real nvidia-smi.
#   tests/device/gpu-host-check.sh WHEELS_DIR OUT_DIR
# WHEELS_DIR holds ansible-core's wheels (pip download ansible-core==2.19.14).
set -uo pipefail
cd "$(dirname "$0")/../.."
wheels=$1; out=$2; mkdir -p "$out"
. tests/device/venv.sh && device_venv "$wheels" || exit 1
inv=$out/hosts.ini
printf '[ray_head]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n[ray_workers]\nlocalhost ansible_connection=local ansible_python_interpreter=%s\n' \
  "$py" "$py" > "$inv"
step() { echo "== $*"; }
module() { ansible -i "$inv" localhost -m ray_gpu_info -a "$1"; echo "rc=$?"; }

step "ray_gpu_info, auto";            module '{"gpus": "auto", "host_name": "gpu-device"}'
step "ray_gpu_info, [0], per_host";   module '{"gpus": [0], "layout": "per_host"}'
step "ray_gpu_info, a missing id";    module '{"gpus": [0, 3]}'
step "ray_gpu_info, GPU 0 twice";     module '{"gpus": [0, 0]}'
step "ray_gpu_info, excluded";        module '{"gpus": "auto", "exclude": [0]}'

step "toolkit role: driver check"
cat > "$out/detect.yml" <<'YML'
- hosts: ray_workers
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: nvidia_container_toolkit, tasks_from: detect}
      vars: {nvidia_container_toolkit_required: true}
YML
ansible-playbook -i "$inv" "$out/detect.yml"; echo "rc=$?"

step "ray_cluster: the Compose file for this host's GPUs"
mkdir -p "$out/project/secrets" && head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' > "$out/project/secrets/ray_auth_token"
ansible-playbook -i "$inv" tests/integration/render-compose.yml -e ray_project_dir="$out/project" -e ray_image_flavour=vllm; echo "rc=$?"
sed -n '/ray-worker-1:/,/healthcheck:/p' "$out/project/localhost.compose.yaml"

if /usr/bin/python3 -c "import torch" 2>/dev/null; then
  step "ray_gpu_info, auto, while another process holds 4 GiB on GPU 0"
  /usr/bin/python3 -c "import torch,time; x=torch.empty(4*1024**3, dtype=torch.uint8, device='cuda'); print('allocated', flush=True); time.sleep(45)" &
  holder=$!; sleep 15
  module '{"gpus": "auto"}'
  kill $holder 2>/dev/null; wait $holder 2>/dev/null
fi
rm -f "$out/project/secrets/ray_auth_token"
