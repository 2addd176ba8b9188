#!/usr/bin/env bash
# Prepares the Python the chart tests use: a venv in target/helm-venv with helm-python-sdk and lupa
# (see requirements.txt), installed from PyPI. Idempotent: a venv that already imports both is
# left as it is; anything else is rebuilt. Needs python3 with venv. CI (.ci/run) runs it before the
# tests; by hand: bash tests/python/setup.sh
set -euo pipefail
cd "$(dirname "$0")/../.."

venv=target/helm-venv
ready() { "$venv/bin/python" -c "import helm_python, lupa" >/dev/null 2>&1; }

if ready; then
  exit 0
fi
if ! python3 -c "import venv, ensurepip" >/dev/null 2>&1; then
  echo "python3 with venv is missing: install python3 and its venv module (python3-venv)" >&2
  exit 1
fi
echo "preparing $venv for the chart tests (helm-python-sdk and lupa, from PyPI)" >&2
python3 -m venv --clear "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
if ! ready; then
  echo "$venv was built but cannot import helm_python and lupa" >&2
  exit 1
fi
