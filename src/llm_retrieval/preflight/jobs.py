"""What each preflight job checks (the workflow scripts call these, one per rule)."""

from __future__ import annotations

import json
import os
import shutil
import socket
from pathlib import Path

from . import drill, failed, guarded, passed, probe
from .report import write_part

WORK = "work"  # beside the tiny study: embeddings, runs, the training drill


def tiny_study_job(config: dict, tiny: Path, part: Path) -> None:
    checks = guarded("tiny model built from config", _tiny_study, config, tiny)
    write_part(part, "tiny model", checks)


def _tiny_study(config: dict, tiny: Path):
    record = drill.build_tiny_study(config, tiny)
    yield passed(
        "tiny model built from config",
        f"{record['architecture']}, random weights "
        f"(hidden {drill.TINY_BUILD['hidden_size']}, {drill.TINY_BUILD['num_hidden_layers']} layers), "
        f"{drill.DOCUMENTS} passages, {drill.QUERIES} queries, on {socket.gethostname()}",
    )


def gpu_job(kind: str, config: dict, needs: dict, tiny: Path, part: Path, launcher: str = "") -> None:
    """The environment probe, then the kind's part of the drill; one part file for the report."""
    checks = guarded(f"{kind}: environment", probe.probe, kind, config, needs, config["preflight"]["expect_gpu"])
    checks += guarded(f"{kind}: tiny model drill", _drill, kind, config, tiny, launcher)
    write_part(part, f"job: {kind}", checks)


def _drill(kind: str, config: dict, tiny: Path, launcher: str):
    work = tiny.parent / WORK
    record = json.loads((tiny / "backbone.json").read_text(encoding="utf-8"))
    queries, shard = work / "queries.parquet", work / "shard-0.parquet"
    if kind == "encode_queries_and_first_shard":
        return drill.encode_checks(kind, record, tiny, queries, config)
    if kind == "encode_corpus_shard":
        return drill.encode_checks(kind, record, tiny, shard, config)
    if kind == "search":
        if not (queries.is_file() and shard.is_file()):
            return [
                failed(
                    "search: tiny corpus searched",
                    "no embeddings to search",
                    "the encode jobs' checks above failed: fix those first",
                )
            ]
        shutil.rmtree(work / "runs", ignore_errors=True)
        return drill.search_checks(queries, shard, work / "runs", config)
    # Under Slurm the ranks start with the training rule's srun line; elsewhere they are spawned here.
    under_slurm = "SLURM_JOB_ID" in os.environ and shutil.which("srun") is not None
    return drill.train_checks(tiny, work / "train", config, launcher if under_slurm else "")
