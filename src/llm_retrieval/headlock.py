"""Reclaiming the lock of a killed Snakemake head process.

Snakemake locks the working directory while it runs and removes the lock when it
exits. A head killed with SIGKILL, by the OOM killer or with its login node leaves
the lock behind, and the same command then refuses to start until ``--unlock``. The
Snakefile calls :func:`reclaim_stale_lock` at start-up: it records which process holds
the lock (host, PID and the PID's start time, so a reused PID is not mistaken for it),
and removes the lock only when that process is certainly gone from this host. A live
head, or one on another host, keeps its lock.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
from pathlib import Path

from .atomic import write_json

log = logging.getLogger(__name__)
HEAD_FILE = "llm_retrieval-head.json"


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (None when there is no such process)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]  # field 22; the command name may contain spaces


def _this_head() -> dict:
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start_time": _start_time(pid)}


def _gone(head: dict) -> bool:
    if head.get("host") != socket.gethostname():
        return False  # cannot tell from here: keep the lock
    return _start_time(int(head["pid"])) != head.get("start_time")


def reclaim_stale_lock(snakemake_dir: str | Path = ".snakemake") -> bool:
    """Remove the directory lock of a dead head; record this process as the head. True if a lock was removed."""
    snakemake_dir = Path(snakemake_dir)
    locks, record = snakemake_dir / "locks", snakemake_dir / HEAD_FILE
    removed = False
    if locks.exists() and record.exists():
        head = json.loads(record.read_text())
        if _gone(head):
            log.warning("removing the lock left by head process %s on %s, which is gone", head["pid"], head["host"])
            shutil.rmtree(locks, ignore_errors=True)
            removed = True
    if not locks.exists():  # another live head keeps its own record
        write_json(record, _this_head())
    return removed


def live_head(snakemake_dir: str | Path = ".snakemake") -> str | None:
    """A message naming the other head that holds this directory's lock, or None when there is none.

    Called at start-up after :func:`reclaim_stale_lock`: a lock that is still there belongs to
    a head that may be alive. Snakemake then refuses to run ("cannot be locked") and suggests
    ``--unlock``; this message says who holds the lock, so that nobody unlocks a running study.
    """
    snakemake_dir = Path(snakemake_dir)
    locks, record = snakemake_dir / "locks", snakemake_dir / HEAD_FILE
    if not locks.exists() or not any(locks.iterdir()) or not record.exists():
        return None
    head = json.loads(record.read_text())
    if int(head.get("pid", -1)) == os.getpid() and head.get("host") == socket.gethostname():
        return None
    where = "this host" if head.get("host") == socket.gethostname() else f"host {head.get('host')}"
    return (
        f"{snakemake_dir.parent.resolve()}: the results directory cannot be locked: another Snakemake head "
        f"(pid {head.get('pid')} on {where}) is running this study. Two heads would write the same outputs. "
        "Wait for it to finish or stop it; do NOT run --unlock while it runs (a dry run, -n, is fine)."
    )
