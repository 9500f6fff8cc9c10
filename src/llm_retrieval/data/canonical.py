"""The canonical on-disk layout every source converts to.

A *collection* is one folder with three Parquet files and a manifest:

- ``corpus.parquet``: ``id, title, text`` (strings)
- ``queries.parquet``: ``query_set, id, text`` (one collection may carry several
  query sets, e.g. MS MARCO dev / DL19 / DL20 over one corpus)
- ``qrels.parquet``: ``query_set, query_id, doc_id, relevance`` (relevance int32)
- ``manifest.json``: what was read or fetched (source, revision, checksum, counts)
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import parquet_writer, write_parquet

CORPUS_SCHEMA = pa.schema([("id", pa.string()), ("title", pa.string()), ("text", pa.string())])
QUERIES_SCHEMA = pa.schema([("query_set", pa.string()), ("id", pa.string()), ("text", pa.string())])
QRELS_SCHEMA = pa.schema(
    [("query_set", pa.string()), ("query_id", pa.string()), ("doc_id", pa.string()), ("relevance", pa.int32())]
)
CORPUS_FILE, QUERIES_FILE, QRELS_FILE, MANIFEST_FILE = (
    "corpus.parquet",
    "queries.parquet",
    "qrels.parquet",
    "manifest.json",
)


class DataError(ValueError):
    """Bad input data; the message names the file and the offending records."""

    def __init__(self, path: str | Path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem


class CorruptOutputError(DataError):
    """A file an earlier step wrote exists but cannot be read (truncated, overwritten, bit rot)."""

    def __init__(self, path: str | Path, err: BaseException | str, kind: str = "Parquet file"):
        detail = f"{type(err).__name__}: {err}" if isinstance(err, BaseException) else err
        super().__init__(
            path,
            f"corrupt or truncated {kind} ({detail}). It is a workflow output: rebuild only it "
            f"with `snakemake --force {path}` (or delete it and rerun the same command); "
            "the steps that read it rerun after it",
        )


def read_parquet(path: str | Path, columns: list[str] | None = None) -> pa.Table:
    """``pq.read_table`` with a :class:`CorruptOutputError` for a file that does not read."""
    try:
        return pq.read_table(path, columns=columns)
    except (pa.ArrowException, OSError) as err:
        if not Path(path).exists():
            raise DataError(path, "file not found") from err
        raise CorruptOutputError(path, err) from err


def first_few(items: Iterable, n: int = 5) -> str:
    items = list(items)
    shown = ", ".join(repr(i) for i in items[:n])
    return shown + (f", ... ({len(items)} in all)" if len(items) > n else "")


def write_corpus(path: str | Path, docs: Iterable[Mapping[str, str]], batch_size: int = 50_000) -> int:
    """Stream ``{id, title, text}`` records to Parquet in bounded memory; returns the count."""
    count = 0
    with parquet_writer(path, CORPUS_SCHEMA) as writer:
        for batch in _batches(docs, batch_size):
            writer.write_table(
                pa.Table.from_pylist(
                    [{"id": str(d["id"]), "title": d.get("title") or "", "text": d.get("text") or ""} for d in batch],
                    schema=CORPUS_SCHEMA,
                )
            )
            count += len(batch)
    return count


def write_queries(path: str | Path, queries: Iterable[Mapping[str, str]]) -> int:
    rows = [{"query_set": q["query_set"], "id": str(q["id"]), "text": q.get("text") or ""} for q in queries]
    write_parquet(path, pa.Table.from_pylist(rows, schema=QUERIES_SCHEMA))
    return len(rows)


def write_qrels(path: str | Path, qrels: Iterable[Mapping]) -> int:
    rows = [
        {
            "query_set": r["query_set"],
            "query_id": str(r["query_id"]),
            "doc_id": str(r["doc_id"]),
            "relevance": int(r["relevance"]),
        }
        for r in qrels
    ]
    write_parquet(path, pa.Table.from_pylist(rows, schema=QRELS_SCHEMA))
    return len(rows)


def read_table(path: str | Path, schema: pa.Schema) -> pa.Table:
    check_schema(path, schema)
    return read_parquet(path).select(schema.names)


def read_queries(path: str | Path, query_set: str) -> dict[str, str]:
    table = read_table(path, QUERIES_SCHEMA).to_pydict()
    queries = {qid: text for qs, qid, text in zip(table["query_set"], table["id"], table["text"]) if qs == query_set}
    if not queries:
        raise DataError(path, f"no queries for query set {query_set!r}")
    return queries


def read_qrels(path: str | Path, query_set: str) -> dict[str, dict[str, int]]:
    """``{query_id: {doc_id: relevance}}`` in the form pytrec_eval takes (str ids, int labels)."""
    table = read_table(path, QRELS_SCHEMA).to_pydict()
    qrels: dict[str, dict[str, int]] = defaultdict(dict)
    for qs, qid, did, rel in zip(table["query_set"], table["query_id"], table["doc_id"], table["relevance"]):
        if qs == query_set:
            qrels[qid][did] = int(rel)
    if not qrels:
        raise DataError(path, f"no qrels for query set {query_set!r}")
    return dict(qrels)


def check_schema(path: str | Path, schema: pa.Schema) -> None:
    """Fail with a named error unless ``path`` is a Parquet file with ``schema``'s columns (reads no data)."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    try:
        names = pq.read_schema(path).names
    except (pa.ArrowException, OSError) as err:
        raise CorruptOutputError(path, err) from err
    missing = [name for name in schema.names if name not in names]
    if missing:
        raise DataError(path, f"missing column(s) {missing}; expected {schema.names}")


def iter_corpus_batches(path: str | Path, batch_size: int = 10_000) -> Iterator[pa.RecordBatch]:
    check_schema(path, CORPUS_SCHEMA)
    try:
        yield from pq.ParquetFile(path).iter_batches(batch_size=batch_size, columns=CORPUS_SCHEMA.names)
    except (pa.ArrowException, OSError) as err:
        raise CorruptOutputError(path, err) from err


def _batches(items: Iterable, size: int) -> Iterator[list]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


# Training groups, in the record format of Tevatron/msmarco-passage-aug.
PASSAGE_STRUCT = pa.struct([("docid", pa.string()), ("title", pa.string()), ("text", pa.string())])
TRAIN_GROUPS_SCHEMA = pa.schema(
    [
        ("query_id", pa.string()),
        ("query", pa.string()),
        ("positive_passages", pa.list_(PASSAGE_STRUCT)),
        ("negative_passages", pa.list_(PASSAGE_STRUCT)),
    ]
)
