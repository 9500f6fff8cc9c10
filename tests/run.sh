#!/usr/bin/env bash
# The test suite, as CI runs it: a throw-away local Slurm cluster for the Slurm tests
# (.ci/slurm-up, torn down on exit), then every test, slow end-to-end ones included.
# Extra arguments go to pytest (e.g. `-m "not slow"` for a quick local pass).
set -euo pipefail
cd "$(dirname "$0")/.."
. .venv/bin/activate
if [ "${SKIP_SLURM:-0}" != 1 ]; then
    trap 'bash .ci/slurm-down || true' EXIT
    bash .ci/slurm-up
    export REQUIRE_SLURM=1  # a broken cluster fails the Slurm tests instead of skipping them
fi
python -m pytest -p no:cacheprovider "$@"
