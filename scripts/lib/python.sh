#!/usr/bin/env bash
# One virtualenv for the PyPI tools the test suite calls (boto3, moto's S3
# server), pinned in scripts/test-requirements.txt: nothing goes into the
# system Python, which Debian 12 refuses anyway (PEP 668). Its bin/ comes
# first on PATH, so the suite's `python3` is the one with boto3.
# Source scripts/lib/services.sh (apt_install) before this file.

test_venv="${COFFER_TEST_VENV:-$HOME/.cache/coffer/test-venv}"

# Creates a venv at $1 with the machine's python3; Debian ships ensurepip
# separately (python3-venv), installed here when missing.
make_venv() {
  local venv=$1
  [ -x "$venv/bin/python" ] && return 0
  command -v python3 >/dev/null 2>&1 || apt_install python3 || return 1
  if ! python3 -m venv "$venv" >/dev/null 2>&1; then
    rm -rf "$venv"
    echo "==> installing python3-venv from Debian"
    apt_install python3-venv || return 1
    python3 -m venv "$venv" || return 1
  fi
}

# Installs $2 (a requirements file) into the venv $1, again only when the file changed.
venv_requirements() {
  local venv=$1 requirements=$2 want
  # The interpreter too: a venv rebuilt on another Python must be filled again.
  want=$({ cat "$requirements"; "$venv/bin/python" -V; } 2>&1 | sha256sum | cut -d' ' -f1)
  [ "$(cat "$venv/.requirements.sha256" 2>/dev/null)" = "$want" ] && return 0
  echo "==> installing into $venv: $(grep -v '^#' "$requirements" | tr '\n' ' ')"
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements" || return 1
  echo "$want" > "$venv/.requirements.sha256"
}

ensure_test_python() {
  make_venv "$test_venv" && venv_requirements "$test_venv" scripts/test-requirements.txt || return 1
  export PATH="$test_venv/bin:$PATH"
}
