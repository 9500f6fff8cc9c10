"""Faults survived: kill -9 at every stage, Slurm's SIGTERM before the time limit, a full disk,
a second head. Each kill -9 test interrupts the mini study (tests/fixtures/mini.yaml) with a
fault hook (tests/fixtures/faults/sitecustomize.py, loaded through PYTHONPATH), then runs the
same command again: it completes, reruns only the killed jobs (resuming what they had
finished), and its outputs equal those of the uninterrupted session-wide mini run."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file
from workflow_helpers import ROOT, scratch_copy, snakemake

HOOK = ROOT / "tests" / "fixtures" / "faults"
MINI = ("--cores", "2", "--configfile", "config/mini.yaml", "--keep-going")
JOB_HEADER = re.compile(r"^\s*(?:local)?rule (\w+):$", re.MULTILINE)


def copy_of(finished: Path, dest: Path) -> Path:
    """The finished mini study, outputs and Snakemake metadata included (mtimes kept), no locks."""
    shutil.copytree(
        finished,
        dest,
        symlinks=True,
        ignore=shutil.ignore_patterns("locks", "incomplete", "llm_retrieval-head.json", "__pycache__"),
    )
    return dest


def run_with_faults(workdir: Path, faults: list[str], *targets: str) -> subprocess.CompletedProcess:
    env = dict(
        os.environ,
        LLM_RETRIEVAL_FAULTS=";".join(faults),
        LLM_RETRIEVAL_FAULT_DIR=str(workdir / ".faults"),
        PYTHONPATH=os.pathsep.join([str(HOOK), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    )
    (workdir / ".faults").mkdir(exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "snakemake", *MINI, *targets],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def jobs_run(proc: subprocess.CompletedProcess) -> Counter:
    return Counter(rule for rule in JOB_HEADER.findall(proc.stdout + proc.stderr) if rule != "all")


def fired(workdir: Path) -> int:
    return len(list((workdir / ".faults").iterdir()))


def leftovers(workdir: Path) -> list[str]:
    """Temporary files or staging folders of killed writers still lying around."""
    return [str(p) for p in (workdir / "results").rglob(".*") if ".tmp-" in p.name or ".staging-" in p.name]


def same_file(a: Path, b: Path) -> None:
    if a.is_dir():  # a dense search's folder: every query set's run
        assert sorted(p.name for p in a.iterdir()) == sorted(p.name for p in b.iterdir()), a
        for child in a.iterdir():
            same_file(child, b / child.name)
        return
    if a.suffix == ".parquet":
        assert pq.read_table(a).equals(pq.read_table(b)), a
    elif a.suffix == ".json":
        assert json.loads(a.read_text()) == json.loads(b.read_text()), a
    else:
        assert a.read_bytes() == b.read_bytes(), a


@pytest.mark.slow
def test_kill_9_in_bm25_encoding_search_evaluation_and_training_then_the_same_command_finishes(finished_mini, tmp_path):
    """Five jobs, each killed once (SIGKILL) in one run: BM25 search as it commits its run file,
    a corpus shard as it commits its second chunk (the first committed, whatever the threads'
    timing: one writer thread commits the chunks in order), a dense search and an evaluation as
    they commit, training in the middle of optimizer step 3 (checkpoint at step 2)."""
    work = copy_of(finished_mini, tmp_path / "study")
    targets = {
        "bm25_search": "results/runs/lexical/bm25/stdlib-t2c/test.trec",
        "encode_corpus_shard": "results/embeddings/zeroshot/base/synth-text/corpus/shard-1.parquet",
        "dense_search": "results/runs/zeroshot/vl-i/stdlib-t2c",  # one folder: every query set's run
        "evaluate_run": "results/metrics/zeroshot/vl-i/synth-text/test.json",
        "train_lora": "results/train/default/base/training.json",
    }
    faults = [
        f"replace:*{targets['bm25_search']}=kill",
        f"replace:*{targets['encode_corpus_shard']}.parts/*@2=kill",
        f"replace:*{targets['dense_search']}=kill",
        f"replace:*{targets['evaluate_run']}=kill",
        "call:llm_retrieval.train.rank:micro_step@3=kill",
    ]
    for target in targets.values():
        shutil.rmtree(work / target) if (work / target).is_dir() else (work / target).unlink()
    shutil.rmtree(work / "results/train/default/base/adapter")
    shutil.rmtree(work / "results/checkpoints/default/base", ignore_errors=True)

    killed = run_with_faults(work, faults, *targets.values(), "results/train/default/base/adapter")
    assert killed.returncode != 0 and fired(work) == len(faults), killed.stderr[-3000:]
    assert not any((work / t).exists() for t in targets.values())
    parts = list((work / (targets["encode_corpus_shard"] + ".parts")).glob("*.parquet"))
    assert len(parts) == 1  # chunk 1 committed; killed as chunk 2 was being committed

    again = run_with_faults(work, faults, *targets.values(), "results/train/default/base/adapter")
    assert again.returncode == 0, again.stderr[-4000:]
    assert jobs_run(again) == Counter(list(targets))  # the killed jobs, nothing else
    assert leftovers(work) == []
    shard_logs = " ".join(p.read_text() for p in (work / "results/logs/encode_corpus_shard").rglob("*.log"))
    assert re.search(rf"resuming shard-1\.parquet: {len(parts)} of [3-9] chunks already encoded", shard_logs)
    report = json.loads((work / targets["train_lora"]).read_text())
    reference = json.loads((finished_mini / targets["train_lora"]).read_text())
    assert report["resumed_from"] == [2] and report["steps_this_process"] == 2 and report["steps"] == 4
    assert report["losses"] == pytest.approx(reference["losses"], abs=1e-6)

    for rule, target in targets.items():
        if rule != "train_lora":
            same_file(work / target, finished_mini / target)
    a = load_file(str(work / "results/train/default/base/adapter/adapter_model.safetensors"))
    b = load_file(str(finished_mini / "results/train/default/base/adapter/adapter_model.safetensors"))
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=1e-6)


@pytest.mark.slow
def test_kill_9_in_data_preparation_and_the_report_then_the_same_command_finishes(finished_mini, tmp_path):
    """The preparation is killed after moving corpus and queries into place but before qrels and the
    manifest (a half collection); the report between writing its CSV and its Markdown."""
    work = copy_of(finished_mini, tmp_path / "study")
    collection = [
        f"results/data/stdlib-t2c/{name}"
        for name in ("corpus.parquet", "queries.parquet", "qrels.parquet", "manifest.json")
    ]
    table = ["results/tables/beir.csv", "results/tables/beir.md"]
    for target in collection + table:
        (work / target).unlink()
    faults = ["replace:*results/data/stdlib-t2c/qrels.parquet=kill", "replace:*results/tables/beir.md=kill"]

    killed = run_with_faults(work, faults, *collection, *table)
    assert killed.returncode != 0 and fired(work) == 2, killed.stderr[-3000:]
    assert not any((work / t).exists() for t in collection + table)  # no half collection, no half table

    again = run_with_faults(work, faults, *collection, *table)
    assert again.returncode == 0, again.stderr[-4000:]
    assert jobs_run(again) == Counter(prepare_collection=1, comparison_table=1)
    assert leftovers(work) == []
    for target in collection + table:
        same_file(work / target, finished_mini / target)


def test_sigterm_mid_step_checkpoints_that_step_and_the_retry_loses_none(tmp_path):
    """Slurm's time limit sends SIGTERM (then SIGKILL after KillWait): the training job finishes
    the step it is in, checkpoints it although checkpoint_every is far off, and exits with the
    retry code; the same command then resumes at that step. (That a resumed run ends with the
    weights of an uninterrupted one: test_kill_9_in_..._training above, test_train_zero3.py.)"""
    from train_fixtures import synthetic_task, tiny_backbone, training_config, write_groups

    from llm_retrieval.train.preemption import RETRY_EXIT

    task = synthetic_task()
    backbone = tiny_backbone(tmp_path / "backbone", list(task["docs"].values()) + list(task["queries"].values()))
    (tmp_path / "backbone.json").write_text(json.dumps({"path": str(backbone), "architecture": "qwen2"}))
    training = training_config(max_steps=6, checkpoint_every=100, world_size=1, per_device_batch=8, global_batch=8)
    out = tmp_path / "run"
    cmd = [
        sys.executable,
        str(ROOT / "workflow/scripts/train_lora.py"),
        "--backbone",
        str(tmp_path / "backbone.json"),
        "--groups",
        str(write_groups(task, tmp_path / "groups.parquet")),
        "--training",
        json.dumps(training),
        "--adapter",
        str(out / "adapter"),
        "--report",
        str(out / "training.json"),
        "--checkpoints",
        str(out / "ckpt"),
        "--log",
        str(out / "train.log"),
    ]
    env = dict(
        os.environ,
        LLM_RETRIEVAL_FAULTS="call:llm_retrieval.train.rank:micro_step@4=term",
        LLM_RETRIEVAL_FAULT_DIR=str(tmp_path),
        PYTHONPATH=os.pathsep.join([str(HOOK), str(ROOT / "src")]),
    )
    stopped = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert stopped.returncode == RETRY_EXIT == 75, stopped.stderr[-3000:]
    assert "stopping after optimizer step 4 on SIGTERM" in (out / "train.log").read_text()
    assert sorted(p.name for p in (out / "ckpt").iterdir()) == ["step-00000004"]
    assert not (out / "adapter").exists() and not (out / "training.json").exists()

    resumed = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    report = json.loads((out / "training.json").read_text())
    assert report["resumed_from"] == [4] and report["steps_this_process"] == 2 and report["steps"] == 6
    assert (out / "adapter/adapter_model.safetensors").exists()


DISK_FULL = r"""
import json, os, resource, signal, sys
import pyarrow as pa
from llm_retrieval.atomic import DiskFullError, write_parquet, write_text
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the write fails with EFBIG instead of killing us
resource.setrlimit(resource.RLIMIT_FSIZE, (256 * 1024, resource.RLIM_INFINITY))
out = sys.argv[1]
big = pa.table({"text": [os.urandom(512).hex() for _ in range(4000)]})  # ~4 MB
errors = []
for write in (lambda: write_parquet(out + "/runs.parquet", big), lambda: write_text(out + "/metrics.json", "x" * 10**6)):
    try:
        write()
    except DiskFullError as err:
        errors.append(str(err))
print(json.dumps({"errors": errors, "files": sorted(os.listdir(out))}))
"""


def test_a_disk_that_fills_during_a_write_is_a_named_error_and_leaves_no_partial_output(tmp_path):
    """RLIMIT_FSIZE stands in for a full disk: the same EFBIG/ENOSPC path through the writers."""
    out = tmp_path / "out"
    out.mkdir()
    proc = subprocess.run(
        [sys.executable, "-c", DISK_FULL, str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ, PYTHONPATH=str(ROOT / "src")),
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert len(result["errors"]) == 2 and result["files"] == []
    assert all(
        "the disk filled up" in e and "nothing was written" in e and "rerun the same command" in e
        for e in result["errors"]
    )
    assert str(out / "runs.parquet") in result["errors"][0]


def test_a_second_head_on_the_same_results_directory_is_refused_with_a_clear_message(tmp_path):
    """A head that is alive (here: this test's parent process) holds the lock; a second run
    of the study in that directory stops before any job and says who holds it."""
    from llm_retrieval.headlock import HEAD_FILE, _start_time

    workdir = scratch_copy(tmp_path)
    locks = workdir / ".snakemake" / "locks"
    locks.mkdir(parents=True)
    (locks / "0.output.lock").write_text(str(workdir / "results/elsewhere.txt") + "\n")  # disjoint outputs
    (workdir / ".snakemake" / HEAD_FILE).write_text(
        json.dumps({"host": os.uname().nodename, "pid": os.getppid(), "start_time": _start_time(os.getppid())})
    )
    target = ("--cores", "1", "--configfile", "config/mini.yaml", "--", "results/sources/synth-text")
    dry = snakemake(workdir, "-n", *target)
    assert "Nothing to be done" not in dry.stdout + dry.stderr  # a dry run still plans
    second = snakemake(workdir, *target, check=False)
    out = second.stdout + second.stderr
    assert second.returncode != 0
    assert f"another Snakemake head (pid {os.getppid()} on this host) is running this study" in out
    assert "do NOT run --unlock" in out
    assert not (workdir / "results/sources/synth-text").exists()  # refused before any job ran
