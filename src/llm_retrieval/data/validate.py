"""Checks every collection passes, whatever its source, and the manifest that records them.

Policy (also in docs/data.md, "Data validation"):

=====================================  =========================================
check                                  outcome
=====================================  =========================================
duplicate document id                  error
duplicate query id within a query set  error
a query set without queries / qrels    error
empty document text                    counted warning
empty query text                       counted warning
qrels naming an unknown document       counted warning, rows kept
qrels naming an unknown query          counted warning, rows dropped
duplicate qrels row (set, query, doc)  counted warning, highest label kept
query with no qrels                    counted warning, query kept
=====================================  =========================================

Errors name the file and the first few offending ids. Only id columns are held in
memory (a 9M-passage corpus's ids take ~100 MB as Arrow strings); texts are scanned
batch by batch.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..atomic import write_json, write_parquet
from .canonical import (CORPUS_FILE, CORPUS_SCHEMA, MANIFEST_FILE, QRELS_FILE, QRELS_SCHEMA, QUERIES_FILE,
                        QUERIES_SCHEMA, DataError, check_schema, first_few, read_table)

EXAMPLES = 5
COLLECTION_FILES = (CORPUS_FILE, QUERIES_FILE, QRELS_FILE)
_STAGED: dict[Path, Path] = {}  # staging folder -> the output folder it becomes


def _warning(check: str, count: int, examples, file: str) -> dict:
    return {"check": check, "file": file, "count": int(count), "examples": [str(e) for e in list(examples)[:EXAMPLES]]}


def _duplicates(values) -> list:
    """Values occurring more than once. Sort-based: ~2x the ids' size, unlike a hash table."""
    values = _flat(values)
    if len(values) < 2:
        return []
    ordered = pc.take(values, pc.sort_indices(values))
    same = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    return pc.unique(pc.filter(ordered.slice(1), same)).to_pylist()


def _corpus_ids(path: Path) -> pa.Array:
    check_schema(path, CORPUS_SCHEMA)
    return pq.read_table(path, columns=["id"]).column("id").combine_chunks()


def _count_empty_texts(path: Path) -> tuple[int, list]:
    """Documents whose text is empty or whitespace, scanned in batches (texts never all in memory)."""
    count, examples = 0, []
    # One row group at a time, one thread: peak memory stays near one row group's worth of text.
    parquet = pq.ParquetFile(path)
    for group in range(parquet.metadata.num_row_groups):
        batch = parquet.read_row_group(group, columns=["id", "text"], use_threads=False)
        empty = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(batch.column("text"), ""))), 0)
        n = pc.sum(empty).as_py() or 0
        if n:
            count += n
            if len(examples) < EXAMPLES:
                examples += pc.filter(batch.column("id"), empty).to_pylist()[:EXAMPLES - len(examples)]
        del batch, empty
    return count, examples


def validate_collection(folder: str | Path, query_sets: list[str] | None = None) -> dict:
    """Check a canonical collection in ``folder``; fix what the policy fixes; return counts and warnings.

    Raises :class:`DataError` on the hard errors. May rewrite ``qrels.parquet`` (dropped rows).
    """
    folder = Path(folder)
    corpus_path, queries_path, qrels_path = (folder / f for f in COLLECTION_FILES)
    warnings: list[dict] = []

    doc_ids = _corpus_ids(corpus_path)
    dups = _duplicates(doc_ids)
    if dups:
        raise DataError(corpus_path, f"{len(dups)} duplicate document id(s): {first_few(dups)}")
    empty, examples = _count_empty_texts(corpus_path)
    if empty:
        warnings.append(_warning("empty_document_text", empty, examples, CORPUS_FILE))

    queries = read_table(queries_path, QUERIES_SCHEMA)
    qkeys = _flat(pc.binary_join_element_wise(queries.column("query_set"), queries.column("id"), "\x1f"))
    dups = _duplicates(qkeys)
    if dups:
        shown = [d.replace("\x1f", ":") for d in dups]
        raise DataError(queries_path, f"{len(dups)} duplicate query id(s) (query_set:id): {first_few(shown)}")
    empty_q = pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(queries.column("text"), ""))), 0)
    if pc.sum(empty_q).as_py():
        warnings.append(_warning("empty_query_text", pc.sum(empty_q).as_py(),
                                 pc.filter(queries.column("id"), empty_q).to_pylist(), QUERIES_FILE))

    qrels = read_table(qrels_path, QRELS_SCHEMA)
    rkeys = pc.binary_join_element_wise(qrels.column("query_set"), qrels.column("query_id"), "\x1f")
    known_query = pc.is_in(rkeys, value_set=qkeys)
    qrels_changed = False
    unknown_q = pc.invert(known_query)
    if pc.sum(unknown_q).as_py():
        dropped = pc.filter(qrels.column("query_id"), unknown_q)
        warnings.append(_warning("qrels_unknown_query_dropped", len(dropped),
                                 pc.unique(dropped).to_pylist(), QRELS_FILE))
        qrels, rkeys, qrels_changed = qrels.filter(known_query), pc.filter(rkeys, known_query), True
    unknown_d = pc.invert(pc.is_in(qrels.column("doc_id"), value_set=doc_ids))
    if pc.sum(unknown_d).as_py():
        warnings.append(_warning("qrels_unknown_document", pc.sum(unknown_d).as_py(),
                                 pc.unique(pc.filter(qrels.column("doc_id"), unknown_d)).to_pylist(), QRELS_FILE))
    deduped = qrels.group_by(["query_set", "query_id", "doc_id"], use_threads=False).aggregate(
        [("relevance", "max")]).rename_columns(["query_set", "query_id", "doc_id", "relevance"])
    if deduped.num_rows != qrels.num_rows:
        warnings.append(_warning("qrels_duplicate_row_max_kept", qrels.num_rows - deduped.num_rows, [], QRELS_FILE))
        qrels, qrels_changed = deduped.select(QRELS_SCHEMA.names).cast(QRELS_SCHEMA), True
        rkeys = pc.binary_join_element_wise(qrels.column("query_set"), qrels.column("query_id"), "\x1f")

    judged = pc.is_in(qkeys, value_set=pc.unique(_flat(rkeys)))
    if pc.sum(pc.invert(judged)).as_py():
        warnings.append(_warning("query_without_qrels", pc.sum(pc.invert(judged)).as_py(),
                                 pc.filter(queries.column("id"), pc.invert(judged)).to_pylist(), QUERIES_FILE))

    query_counts = _counts(queries.column("query_set"))
    qrels_counts = _counts(qrels.column("query_set"))
    for name in sorted(set(query_sets or []) | set(query_counts)):
        if not query_counts.get(name):
            raise DataError(queries_path, f"query set {name!r} has no queries")
        if not qrels_counts.get(name):
            raise DataError(qrels_path, f"query set {name!r} has no qrels (none left after dropping unknown queries)")
    if qrels_changed:
        write_parquet(qrels_path, qrels)
    return {
        "counts": {"documents": len(doc_ids), "queries": query_counts, "qrels": qrels_counts},
        "warnings": warnings,
    }


def _flat(values) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _counts(column) -> dict[str, int]:
    counts = pc.value_counts(_flat(column))
    return {v: int(c) for v, c in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())}


def finish_collection(out_dir: str | Path, provenance: dict, query_sets: list[str] | None = None,
                      origins: dict[str, str] | None = None) -> dict:
    """Validate the collection written in ``out_dir`` and write ``manifest.json`` atomically.

    Every preparer ends with this. The manifest holds the provenance (source, URL or
    dataset id, revision, checksum), the counts and the counted validation warnings.
    ``provenance["warnings"]`` (a list of strings), if any, is carried over.

    A validation error names where the data came from, not the scratch folder it was
    converted in: ``origins`` maps a collection file name (``corpus.parquet``...) to its
    source file or dataset; without an entry the error names the final output path.
    """
    out_dir = Path(out_dir)
    try:
        report = validate_collection(out_dir, query_sets)
    except DataError as err:
        name = Path(err.path).name
        origin = (origins or {}).get(name) or str(_STAGED.get(out_dir, out_dir) / name)
        raise DataError(origin, f"{err.problem} (found when validating the converted {name}; fix the source "
                                "and rerun)") from err
    provenance = dict(provenance)
    notes = provenance.pop("warnings", [])
    manifest = {"provenance": provenance, "counts": report["counts"],
                "validation": {"warnings": report["warnings"], "notes": list(notes)}}
    write_json(out_dir / MANIFEST_FILE, manifest)
    return manifest


@contextlib.contextmanager
def staged_collection(out_dir: str | Path) -> Iterator[Path]:
    """A scratch folder beside ``out_dir``; its collection files move into ``out_dir`` on success.

    Write corpus/queries/qrels into the yielded folder and call :func:`finish_collection`
    on it. If anything raises, ``out_dir`` is left as it was. On success the old
    manifest is removed first and the new one moved last, so a folder with a manifest
    always holds the files that manifest describes.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.staging-*"):  # left by a killed preparation
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    _STAGED[stage] = out_dir
    try:
        yield stage
        if not (stage / MANIFEST_FILE).exists():
            raise DataError(stage, "staged collection has no manifest.json (call finish_collection)")
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
        for name in (*COLLECTION_FILES, MANIFEST_FILE):
            os.replace(stage / name, out_dir / name)
    finally:
        _STAGED.pop(stage, None)
        shutil.rmtree(stage, ignore_errors=True)
