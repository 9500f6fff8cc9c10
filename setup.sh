#!/usr/bin/env bash
# Set up the project on a fresh machine: a virtual environment in .venv with the pinned
# packages and this package installed editable. `--test` adds the test tools.
# torch is installed first and pinned (2.13.0, CPU wheel here): an unpinned torch, asked
# for by any other package, would pull a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")"
PYTHON=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
. .venv/bin/activate
python -m pip install -q --upgrade pip
python -m pip install -q torch==2.13.0
if [ "${1:-}" = "--test" ]; then
    python -m pip install -q -r requirements-test.txt
else
    python -m pip install -q -r requirements.txt
fi
python -m pip install -q --no-deps -e .
python -c "import torch, llm_retrieval; print('ready: torch', torch.__version__)"
