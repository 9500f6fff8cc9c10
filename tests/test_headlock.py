"""A killed head's lock is reclaimed; a live head's lock never is."""

import json
import os
import subprocess
import sys

from workflow_helpers import scratch_copy, snakemake

from llm_retrieval.headlock import HEAD_FILE, reclaim_stale_lock


def _locked_by(tmp_path, pid: int, start_time):
    (tmp_path / "locks").mkdir(parents=True)
    (tmp_path / "locks" / "0.output.lock").write_text("results/x\n")
    (tmp_path / HEAD_FILE).write_text(json.dumps({"host": os.uname().nodename, "pid": pid, "start_time": start_time}))


def test_lock_of_a_dead_head_is_removed(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    _locked_by(tmp_path, dead.pid, "1")
    assert reclaim_stale_lock(tmp_path) is True
    assert not (tmp_path / "locks").exists()
    assert json.loads((tmp_path / HEAD_FILE).read_text())["pid"] == os.getpid()


def test_lock_of_a_live_head_is_kept(tmp_path):
    from llm_retrieval.headlock import _start_time

    _locked_by(tmp_path, os.getppid(), _start_time(os.getppid()))
    assert reclaim_stale_lock(tmp_path) is False
    assert (tmp_path / "locks" / "0.output.lock").exists()
    assert json.loads((tmp_path / HEAD_FILE).read_text())["pid"] == os.getppid()


def test_reused_pid_is_not_mistaken_for_the_head(tmp_path):
    _locked_by(tmp_path, os.getppid(), "0")  # same PID, different start time: another process
    assert reclaim_stale_lock(tmp_path) is True


def test_same_command_runs_again_after_a_killed_head(tmp_path):
    """End to end: a lock left by a killed head no longer stops the next run; a live head's still does."""
    from llm_retrieval.headlock import _start_time

    workdir = scratch_copy(tmp_path)
    target = "results/sources/synth-text"
    _locked_by(workdir / ".snakemake", os.getppid(), _start_time(os.getppid()))
    (workdir / ".snakemake/locks/0.output.lock").write_text(target + "\n")
    args = ("--cores", "1", "--configfile", "config/mini.yaml", "--", target)
    blocked = snakemake(workdir, *args, check=False)
    assert blocked.returncode != 0 and "cannot be locked" in blocked.stdout + blocked.stderr

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    (workdir / ".snakemake" / HEAD_FILE).write_text(
        json.dumps({"host": os.uname().nodename, "pid": dead.pid, "start_time": "1"})
    )
    snakemake(workdir, *args)
    assert (workdir / target / "corpus.jsonl").exists()
