"""The DAG build stays light: planning the study (a dry run of the whole Snakefile, in one process)
loads no statistics, plotting or deep-learning library; those are imported by the jobs that need them."""

from __future__ import annotations

import subprocess
import sys

from workflow_helpers import scratch_copy

HEAVY = ("scipy", "matplotlib", "torch", "transformers", "peft")

DRY_RUN_IN_PROCESS = """
import sys
from snakemake.cli import main
try:
    main(["-n", "--quiet", "rules", "--configfile", sys.argv[1]])
except SystemExit as stop:
    assert not stop.code, f"the dry run failed ({stop.code})"
print("loaded:", ",".join(sorted({m.split(".")[0] for m in sys.modules} & set(sys.argv[2].split(",")))))
"""


def test_planning_the_study_imports_no_statistics_plotting_or_deep_learning_library(tmp_path):
    workdir = scratch_copy(tmp_path)
    for config in ("config/config.yaml", "config/demo.yaml"):
        proc = subprocess.run(
            [sys.executable, "-c", DRY_RUN_IN_PROCESS, config, ",".join(HEAVY)],
            cwd=workdir,
            check=False,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        loaded = [line for line in proc.stdout.splitlines() if line.startswith("loaded:")]
        assert loaded == ["loaded: "], f"{config}: the DAG build imported {loaded} ({proc.stderr[-500:]})"
