"""Running the workflow in a scratch copy of the repository and reading its plans."""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import yaml
from snakemake.utils import update_config, validate

from llm_retrieval.study import Study

ROOT = Path(__file__).resolve().parents[1]
WORKFLOW_FILES = ("Snakefile", "workflow", "config", "resources", "profiles", "slurm", "envs", "requirements.txt")


def load_study(path, *overrides: dict) -> Study:
    """A config as the workflow sees it (later --configfile overrides deep-merged, as Snakemake does):
    schema-validated (defaults filled), then cross-checked."""
    config = yaml.safe_load(Path(path).read_text())
    for override in overrides:
        update_config(config, copy.deepcopy(override))
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return Study(config)


def encoding_section(values: dict) -> dict:
    """``values`` as the workflow's `encoding` section: schema-validated, the schema's defaults filled
    (config/demo.yaml around it; the schema is the one home of the defaults, e.g. share_prefix)."""
    from llm_retrieval.config_schema import validate_config

    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config["encoding"] = copy.deepcopy(values)
    return validate_config(config, ROOT / "workflow/schemas/config.schema.yaml", "a test's encoding")["encoding"]


def scratch_copy(dest: Path) -> Path:
    for name in WORKFLOW_FILES:
        source = ROOT / name
        if source.is_symlink():  # slurm -> profiles/slurm stays a link, as in the repository
            (dest / name).symlink_to(source.readlink())
        elif source.is_dir():
            shutil.copytree(source, dest / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / name)
    shutil.copy2(ROOT / "tests" / "fixtures" / "mini.yaml", dest / "config" / "mini.yaml")
    return dest


def snakemake(workdir: Path, *args: str, check: bool = True, timeout: int = 900) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        [sys.executable, "-m", "snakemake", *args], cwd=workdir, capture_output=True, text=True, timeout=timeout
    )
    if check and proc.returncode != 0:
        raise AssertionError(
            f"snakemake {' '.join(args)} failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-6000:]}"
        )
    return proc


JOB_HEADER = re.compile(r"^(?:local)?rule (\w+):$")


def planned_jobs(output: str) -> list[tuple[str, dict]]:
    """(rule, wildcards) of every job a dry run lists."""
    jobs, current = [], None
    for line in output.splitlines():
        header = JOB_HEADER.match(line.strip())
        if header:
            current = (header.group(1), {})
            jobs.append(current)
        elif current and line.strip().startswith("wildcards:"):
            for pair in line.strip()[len("wildcards:") :].split(","):
                key, _, value = pair.strip().partition("=")
                current[1][key] = value
    return jobs


def job_counts(jobs) -> Counter:
    return Counter(rule for rule, _ in jobs if rule != "all")
