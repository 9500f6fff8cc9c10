"""The preflight report: every check's line, and the shared file system seen from the head."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from ..atomic import write_json, write_text
from . import FAILED, MARKS, OK, SKIPPED, Check, failed, passed


def write_part(path: str | Path, section: str, checks: list[Check], **extra) -> None:
    """One job's part of the report: its checks, where and when it ran."""
    write_json(
        path,
        {
            "section": section,
            "host": socket.gethostname(),
            "written_at": time.time(),
            "checks": [c.as_dict() for c in checks],
            **extra,
        },
    )


def read_part(path: str | Path) -> dict:
    part = json.loads(Path(path).read_text(encoding="utf-8"))
    part["checks"] = [Check(**c) for c in part["checks"]]
    return part


def shared_fs_check(parts: list[dict], compute: list[str]) -> Check:
    """The compute jobs' parts, read here on the head (a file that only their node saw would be missing)."""
    name = "shared file system"
    head = socket.gethostname()
    hosts = sorted({p["host"] for p in parts if p["path"] in compute})
    if len(hosts) == 0:
        return failed(name, "no compute job's file was read", "results/ must be on a file system the jobs share")
    where = "the head's own node" if hosts == [head] else f"node(s) {', '.join(hosts)}"
    return passed(name, f"{len(compute)} files written by compute jobs on {where} read on the head ({head})")


def write_report(part_paths: list[str], compute: list[str], md_path: str | Path, json_path: str | Path) -> dict:
    """report.md (one line per check, grouped by section) and report.json; returns the counts."""
    parts = [{**read_part(p), "path": p} for p in part_paths]
    sections: dict[str, list[Check]] = {}
    for part in parts:
        sections.setdefault(part["section"], []).extend(part["checks"])
    sections.setdefault("file system", []).append(shared_fs_check(parts, compute))
    every = [c for checks in sections.values() for c in checks]
    counts = {status: sum(c.status == status for c in every) for status in (OK, FAILED, SKIPPED)}
    summary = (
        f"{counts[OK]} {MARKS[OK]}, {counts[FAILED]} {MARKS[FAILED]}, {counts[SKIPPED]} {MARKS[SKIPPED]} "
        f"(skipped). Each {MARKS[FAILED]} says what to change in the config; docs/slurm.md, "
        f'"Before the study: preflight".'
    )
    lines = ["# Preflight", "", summary, ""]
    for section, checks in sections.items():
        lines += [f"## {section}", ""] + [f"- {c.line()}" for c in checks] + [""]
    write_text(md_path, "\n".join(lines))
    write_json(
        json_path,
        {"counts": counts, "checks": [{**c.as_dict(), "section": s} for s, checks in sections.items() for c in checks]},
    )
    return counts
