"""Checks every collection passes, whatever its source (the manifest and staging: staging.py).

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

Each row is one small function in :data:`CHECKS` (run on a :class:`Collection`:
corpus first, then queries, then qrels). Errors name the file and the first few
offending ids. Only id columns are held in memory (a 9M-passage corpus's ids take ~100 MB as Arrow strings); texts are scanned
batch by batch.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cached_property
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..atomic import write_parquet
from .canonical import (
    CORPUS_FILE,
    CORPUS_SCHEMA,
    QRELS_FILE,
    QRELS_SCHEMA,
    QUERIES_FILE,
    QUERIES_SCHEMA,
    DataError,
    check_schema,
    first_few,
    read_table,
)

EXAMPLES = 5
COLLECTION_FILES = (CORPUS_FILE, QUERIES_FILE, QRELS_FILE)
SEP = "\x1f"  # joins query_set and id into one key


def _flat(values) -> pa.Array:
    return values.combine_chunks() if isinstance(values, pa.ChunkedArray) else values


def _counts(column) -> dict[str, int]:
    counts = pc.value_counts(_flat(column))
    return {v: int(c) for v, c in zip(counts.field("values").to_pylist(), counts.field("counts").to_pylist())}


def _duplicates(values) -> list:
    """Values occurring more than once. Sort-based: ~2x the ids' size, unlike a hash table."""
    values = _flat(values)
    if len(values) < 2:
        return []
    ordered = pc.take(values, pc.sort_indices(values))
    same = pc.equal(ordered.slice(1), ordered.slice(0, len(ordered) - 1))
    return pc.unique(pc.filter(ordered.slice(1), same)).to_pylist()


def _blank(texts) -> pa.Array:
    """True where a text is null, empty or whitespace."""
    return pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(pc.fill_null(texts, ""))), 0)


def _query_keys(query_sets, ids) -> pa.Array:
    return _flat(pc.binary_join_element_wise(query_sets, ids, SEP))


class Collection:
    """One canonical collection folder as the checks see it: read lazily, in check order.

    Checks read ``doc_ids``, ``queries`` and ``qrels``, add warnings with :meth:`warn`,
    and replace ``qrels`` (via :meth:`set_qrels`) when the policy fixes rows.
    """

    def __init__(self, folder: str | Path, query_sets: list[str] | None):
        self.folder = Path(folder)
        self.corpus_path, self.queries_path, self.qrels_path = (self.folder / f for f in COLLECTION_FILES)
        self.query_sets = list(query_sets or [])
        self.warnings: list[dict] = []
        self.qrels_changed = False

    def warn(self, check: str, count: int, examples, file: str) -> None:
        self.warnings.append(
            {"check": check, "file": file, "count": int(count), "examples": [str(e) for e in list(examples)[:EXAMPLES]]}
        )

    @cached_property
    def doc_ids(self) -> pa.Array:
        check_schema(self.corpus_path, CORPUS_SCHEMA)
        return pq.read_table(self.corpus_path, columns=["id"]).column("id").combine_chunks()

    @cached_property
    def queries(self) -> pa.Table:
        return read_table(self.queries_path, QUERIES_SCHEMA)

    @cached_property
    def query_keys(self) -> pa.Array:
        return _query_keys(self.queries.column("query_set"), self.queries.column("id"))

    @cached_property
    def qrels(self) -> pa.Table:
        return read_table(self.qrels_path, QRELS_SCHEMA)

    def qrels_keys(self) -> pa.Array:
        return _query_keys(self.qrels.column("query_set"), self.qrels.column("query_id"))

    def set_qrels(self, qrels: pa.Table) -> None:
        self.qrels, self.qrels_changed = qrels, True


# --- the checks, in the order they run ------------------------------------------------


def unique_document_ids(c: Collection) -> None:
    dups = _duplicates(c.doc_ids)
    if dups:
        raise DataError(c.corpus_path, f"{len(dups)} duplicate document id(s): {first_few(dups)}")


def empty_document_text(c: Collection) -> None:
    """Scanned one row group at a time, one thread: texts are never all in memory."""
    count, examples = 0, []
    parquet = pq.ParquetFile(c.corpus_path)
    for group in range(parquet.metadata.num_row_groups):
        batch = parquet.read_row_group(group, columns=["id", "text"], use_threads=False)
        empty = _blank(batch.column("text"))
        n = pc.sum(empty).as_py() or 0
        if n:
            count += n
            if len(examples) < EXAMPLES:
                examples += pc.filter(batch.column("id"), empty).to_pylist()[: EXAMPLES - len(examples)]
        del batch, empty
    if count:
        c.warn("empty_document_text", count, examples, CORPUS_FILE)


def unique_query_ids(c: Collection) -> None:
    dups = _duplicates(c.query_keys)
    if dups:
        shown = [d.replace(SEP, ":") for d in dups]
        raise DataError(c.queries_path, f"{len(dups)} duplicate query id(s) (query_set:id): {first_few(shown)}")


def empty_query_text(c: Collection) -> None:
    empty = _blank(c.queries.column("text"))
    count = pc.sum(empty).as_py()
    if count:
        c.warn("empty_query_text", count, pc.filter(c.queries.column("id"), empty).to_pylist(), QUERIES_FILE)


def qrels_known_queries(c: Collection) -> None:
    """Qrels rows naming an unknown query are dropped."""
    known = pc.is_in(c.qrels_keys(), value_set=c.query_keys)
    unknown = pc.invert(known)
    if pc.sum(unknown).as_py():
        dropped = pc.filter(c.qrels.column("query_id"), unknown)
        c.warn("qrels_unknown_query_dropped", len(dropped), pc.unique(dropped).to_pylist(), QRELS_FILE)
        c.set_qrels(c.qrels.filter(known))


def qrels_known_documents(c: Collection) -> None:
    """Qrels rows naming an unknown document are counted and kept."""
    unknown = pc.invert(pc.is_in(c.qrels.column("doc_id"), value_set=c.doc_ids))
    if pc.sum(unknown).as_py():
        c.warn(
            "qrels_unknown_document",
            pc.sum(unknown).as_py(),
            pc.unique(pc.filter(c.qrels.column("doc_id"), unknown)).to_pylist(),
            QRELS_FILE,
        )


def qrels_unique_rows(c: Collection) -> None:
    """Duplicate (query_set, query_id, doc_id) rows: the highest label is kept."""
    deduped = (
        c.qrels.group_by(["query_set", "query_id", "doc_id"], use_threads=False)
        .aggregate([("relevance", "max")])
        .rename_columns(["query_set", "query_id", "doc_id", "relevance"])
    )
    if deduped.num_rows != c.qrels.num_rows:
        c.warn("qrels_duplicate_row_max_kept", c.qrels.num_rows - deduped.num_rows, [], QRELS_FILE)
        c.set_qrels(deduped.select(QRELS_SCHEMA.names).cast(QRELS_SCHEMA))


def queries_have_qrels(c: Collection) -> None:
    unjudged = pc.invert(pc.is_in(c.query_keys, value_set=pc.unique(c.qrels_keys())))
    if pc.sum(unjudged).as_py():
        c.warn(
            "query_without_qrels",
            pc.sum(unjudged).as_py(),
            pc.filter(c.queries.column("id"), unjudged).to_pylist(),
            QUERIES_FILE,
        )


def query_sets_not_empty(c: Collection) -> None:
    """Every requested (or present) query set has queries and, after the fixes above, qrels."""
    query_counts, qrels_counts = _counts(c.queries.column("query_set")), _counts(c.qrels.column("query_set"))
    for name in sorted(set(c.query_sets) | set(query_counts)):
        if not query_counts.get(name):
            raise DataError(c.queries_path, f"query set {name!r} has no queries")
        if not qrels_counts.get(name):
            raise DataError(c.qrels_path, f"query set {name!r} has no qrels (none left after dropping unknown queries)")


CHECKS: tuple[Callable[[Collection], None], ...] = (
    unique_document_ids,
    empty_document_text,
    unique_query_ids,
    empty_query_text,
    qrels_known_queries,
    qrels_known_documents,
    qrels_unique_rows,
    queries_have_qrels,
    query_sets_not_empty,
)


def validate_collection(folder: str | Path, query_sets: list[str] | None = None) -> dict:
    """Check a canonical collection in ``folder``; fix what the policy fixes; return counts and warnings.

    Raises :class:`DataError` on the hard errors. May rewrite ``qrels.parquet`` (dropped rows).
    """
    collection = Collection(folder, query_sets)
    for check in CHECKS:
        check(collection)
    if collection.qrels_changed:
        write_parquet(collection.qrels_path, collection.qrels)
    return {
        "counts": {
            "documents": len(collection.doc_ids),
            "queries": _counts(collection.queries.column("query_set")),
            "qrels": _counts(collection.qrels.column("query_set")),
        },
        "warnings": collection.warnings,
    }
