# Sourced by the device checks, from the project root: Ansible in a venv
# from the carried wheels (device_venv WHEELS_DIR), or the venv named by
# $VENV when it has Ansible already (a dry run elsewhere). Sets $py, the
# venv's Python, and points Ansible at the project and at the carried
# collections (WHEELS_DIR/collections, when there).
device_venv() {
  local wheels=$1 venv=${VENV:-/tmp/device-venv}
  if [ ! -x "$venv/bin/ansible-playbook" ]; then
    python3 -m venv "$venv" && "$venv/bin/pip" install -q --no-index "$wheels"/*.whl || return 1
  fi
  py=$venv/bin/python
  export PATH=$venv/bin:$PATH ANSIBLE_CONFIG=$PWD/ansible.cfg ANSIBLE_NOCOLOR=1 ANSIBLE_CALLBACK_RESULT_FORMAT=yaml
  if [ -d "$wheels/collections" ]; then export ANSIBLE_COLLECTIONS_PATH=$PWD/$wheels/collections; fi
}
