# Sourced by scripts/site.sh and scripts/test.sh: installs what the
# controller needs (Python >= 3.11 venv with requirements.txt) on a fresh
# Debian 12/13 or Ubuntu 22.04/24.04 host, then puts the venv on PATH.
# shellcheck shell=bash

bootstrap_die() { echo "bootstrap: $*" >&2; exit 1; }

[ "$(id -u)" = 0 ] || bootstrap_die "run as root (it installs packages and Docker)"
[ -r /etc/os-release ] || bootstrap_die "no /etc/os-release; supported: Debian 12/13, Ubuntu 22.04/24.04"
. /etc/os-release
case "${ID}-${VERSION_ID}" in
  debian-12|debian-13|ubuntu-24.04) bootstrap_python=python3 ;;
  ubuntu-22.04) bootstrap_python=python3.11 ;;  # ansible-core 2.19 needs Python >= 3.11
  *) bootstrap_die "unsupported OS ${PRETTY_NAME:-$ID $VERSION_ID}; supported: Debian 12/13, Ubuntu 22.04/24.04" ;;
esac

bootstrap_apt() {
  if [ -z "${bootstrap_apt_updated:-}" ]; then
    apt-get update -qq
    bootstrap_apt_updated=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

# System packages: a venv-capable Python, and python3-apt for the apt module.
bootstrap_missing=()
command -v "/usr/bin/$bootstrap_python" >/dev/null || bootstrap_missing+=("$bootstrap_python")
"/usr/bin/$bootstrap_python" -c 'import ensurepip, venv' 2>/dev/null || bootstrap_missing+=("${bootstrap_python}-venv")
/usr/bin/python3 -c 'import apt' 2>/dev/null || bootstrap_missing+=(python3-apt)
if [ "${#bootstrap_missing[@]}" -gt 0 ]; then
  echo "bootstrap: installing ${bootstrap_missing[*]}"
  bootstrap_apt "${bootstrap_missing[@]}"
fi

# The venv is rebuilt only when requirements.txt changes.
bootstrap_stamp="$(sha256sum requirements.txt | cut -c1-16)"
if [ "$(cat .venv/.requirements 2>/dev/null)" != "$bootstrap_stamp" ]; then
  echo "bootstrap: installing the controller's Python packages into .venv (about a minute)"
  rm -rf .venv
  "/usr/bin/$bootstrap_python" -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
  echo "$bootstrap_stamp" > .venv/.requirements
fi
export PATH="$PWD/.venv/bin:$PATH"
# The README's commands (`ansible-playbook serve.yml ...`) must work in any new
# shell: link the venv's entry points into /usr/local/bin. A name that another
# installation owns (a file, or a link outside a .venv) is left alone.
for bootstrap_tool in ansible ansible-playbook ansible-galaxy ansible-doc ansible-inventory ansible-lint molecule; do
  bootstrap_link="/usr/local/bin/$bootstrap_tool"
  if [ ! -e "$bootstrap_link" ] && [ ! -L "$bootstrap_link" ] || [[ "$(readlink "$bootstrap_link")" == */.venv/bin/"$bootstrap_tool" ]]; then
    [ "$(readlink "$bootstrap_link")" = "$PWD/.venv/bin/$bootstrap_tool" ] || ln -sfn "$PWD/.venv/bin/$bootstrap_tool" "$bootstrap_link"
  else
    echo "bootstrap: $bootstrap_link belongs to another installation; run this project's with $PWD/.venv/bin/$bootstrap_tool" >&2
  fi
done
# Collections come bundled with the pinned `ansible`; this only checks them.
ansible-galaxy collection install -r requirements.yml >/dev/null
