"""TREC run files: ``qid Q0 docid rank score tag``, the one format every retriever writes."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from .atomic import atomic_path
from .data.canonical import DataError

Run = dict[str, dict[str, float]]


def drop_self_hits(query_id: str, hits: Iterable[tuple[str, float]]) -> list[tuple[str, float]]:
    """BEIR's rule: a retrieved document whose id equals the query id is not a hit."""
    return [(doc, score) for doc, score in hits if doc != query_id]


def format_run_lines(ranked: dict[str, list[tuple[str, float]]], tag: str) -> str:
    """Run file text. Scores with 9 significant digits: two different float32 scores never print
    equal, so trec_eval sees the retrieval order rather than re-sorting printed ties by doc id."""
    return "".join(
        f"{qid} Q0 {doc} {rank} {float(score):.9g} {tag}\n"
        for qid, hits in ranked.items()
        for rank, (doc, score) in enumerate(hits, start=1)
    )


def write_run(path: str | Path, ranked: dict[str, list[tuple[str, float]]], tag: str) -> None:
    """``ranked`` maps each query to its hits, best first."""
    with atomic_path(path) as tmp:
        tmp.write_text(format_run_lines(ranked, tag), encoding="utf-8")


def read_run(path: str | Path) -> Run:
    run: Run = {}
    with open(path, encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            fields = line.split()
            if len(fields) != 6:
                raise DataError(
                    path, f"line {number}: expected 6 fields 'qid Q0 docid rank score tag', got {len(fields)}"
                )
            run.setdefault(fields[0], {})[fields[2]] = float(fields[4])
    return run
