"""Preflight: check a user's cluster before the study spends its GPU-hours (``snakemake preflight``).

Each check is one line of ``results/preflight/report.md`` (and an entry of ``report.json``): ✔, ✗ with
what to change in the config, or – (skipped, with the reason). The checks, by module:

- :mod:`.requests`: every rule's resources at every retry attempt, as the Slurm executor would submit
  them, against the scheduler (``sbatch --test-only``) and the partition's limits;
- :mod:`.probe`: on one job of each GPU kind, what it sees (GPUs, torch's CUDA build, flash-attn,
  faiss's GPUs, the search backend it would choose) and its free GPU memory against the plan's needs;
- :mod:`.drill`: a tiny random-weight model pushed through the real code paths (encode with the shared
  prefix, search, two training steps over two ranks, a SIGTERM checkpoint and its resume);
- :mod:`.hub`: the pins lock complete (strict mode) and a token where a gated model is in the study;
- :mod:`.report`: the report, with the shared file system check (the compute jobs' files read on the head).

Every check catches its own failure and reports it, so the report is written whatever fails.
"""

from __future__ import annotations

import socket
import traceback
from dataclasses import asdict, dataclass

OK, FAILED, SKIPPED = "ok", "failed", "skipped"
MARKS = {OK: "✔", FAILED: "✗", SKIPPED: "–"}


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, its outcome, what was seen, and what to change."""

    name: str
    status: str  # OK, FAILED or SKIPPED
    detail: str = ""
    advice: str = ""  # FAILED: what to change in the config; SKIPPED: why

    def line(self) -> str:
        text = f"{MARKS[self.status]} {self.name}: {self.detail}".rstrip(": ")
        return f"{text} — {self.advice}" if self.advice else text

    def as_dict(self) -> dict:
        return asdict(self)


def passed(name: str, detail: str) -> Check:
    return Check(name, OK, detail)


def failed(name: str, detail: str, advice: str) -> Check:
    return Check(name, FAILED, detail, advice)


def skipped(name: str, reason: str) -> Check:
    return Check(name, SKIPPED, "", reason)


def guarded(name: str, check, *args, advice: str = "see the job's log") -> list[Check]:
    """``check(*args)`` (a list of Checks), or one ✗ naming the exception when the check itself crashed."""
    try:
        return list(check(*args))
    except Exception as err:  # noqa: BLE001 - a crashed check is a failed check, reported
        last = traceback.format_exception_only(type(err), err)[-1].strip()
        return [failed(name, f"crashed on {socket.gethostname()}: {last[:600]}", advice)]
