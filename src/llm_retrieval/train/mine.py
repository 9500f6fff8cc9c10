"""BM25 hard negatives from any canonical collection's query set, as RepLLaMA's training groups were mined.

Positives come from the qrels (relevance > 0); negatives are the top-``depth`` BM25
hits for the query that are not positives, best first. Queries with no positive or no
negative are left out and counted (they cannot be trained on); the result is in TRAIN_GROUPS_SCHEMA.

Any collection with a training query set serves: the demo's, BEIR's HotpotQA ``train`` split or
``nq-train``, ToolBench's ``train`` queries, QReCC's training turns. Only the corpus ids and the
texts of the passages a group uses are held in memory, so a 5M-passage corpus mines in bounded memory.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from ..atomic import write_parquet
from ..bm25 import bm25_search
from ..data.canonical import (
    CORPUS_FILE,
    CORPUS_SCHEMA,
    QRELS_FILE,
    QUERIES_FILE,
    TRAIN_GROUPS_SCHEMA,
    DataError,
    check_schema,
    first_few,
    iter_corpus_batches,
    read_parquet,
    read_qrels,
    read_queries,
)

log = logging.getLogger(__name__)


def _passages(corpus_path: Path, wanted: set[str]) -> dict[str, dict]:
    """``{doc id: passage record}`` of the wanted documents, read a row group at a time."""
    found = {}
    for batch in iter_corpus_batches(corpus_path):
        rows = batch.to_pydict()
        for doc_id, title, text in zip(rows["id"], rows["title"], rows["text"]):
            if doc_id in wanted:
                found[doc_id] = {"docid": doc_id, "title": title or "", "text": text or ""}
    return found


def mine_bm25_groups(
    collection_dir: str | Path, index_dir: str | Path, query_set: str, out_path: str | Path, depth: int, bm25: dict
) -> int:
    """Write the training groups Parquet atomically; returns the number of groups.

    Uses the collection's BM25 index (the same one the lexical baseline searches).
    """
    collection_dir = Path(collection_dir)
    corpus_path = collection_dir / CORPUS_FILE
    check_schema(corpus_path, CORPUS_SCHEMA)
    doc_ids = read_parquet(corpus_path, columns=["id"]).column("id").to_pylist()
    queries = read_queries(collection_dir / QUERIES_FILE, query_set)
    qrels = read_qrels(collection_dir / QRELS_FILE, query_set)
    known = set(doc_ids)
    unknown = sorted({d for rels in qrels.values() for d in rels if d not in known})
    if unknown:
        raise DataError(collection_dir / QRELS_FILE, f"qrels name documents missing from the corpus: {unknown[:5]}")

    positives = {qid: [d for d, rel in rels.items() if rel > 0] for qid, rels in qrels.items()}
    query_ids = [qid for qid in queries if positives.get(qid)]
    if not query_ids:
        raise DataError(collection_dir / QRELS_FILE, f"no query of set {query_set!r} has a positive document")
    # Deep enough that `depth` non-positives remain after removing positives.
    k = depth + max(len(positives[q]) for q in query_ids)
    hits = bm25_search(index_dir, doc_ids, {q: queries[q] for q in query_ids}, k, bm25)
    del doc_ids, known
    negatives = {qid: [d for d, _ in hits[qid] if d not in set(positives[qid])][:depth] for qid in query_ids}
    passages = _passages(corpus_path, {d for q in query_ids for d in (*positives[q], *negatives[q])})

    rows, without_negatives = [], []
    for qid in tqdm(query_ids, desc="mine negatives", unit="query", disable=None, mininterval=5):
        if not negatives[qid]:  # BM25 found nothing else sharing a term: no hard negative to train against
            without_negatives.append(qid)
            continue
        rows.append(
            {
                "query_id": qid,
                "query": queries[qid],
                "positive_passages": [passages[d] for d in positives[qid]],
                "negative_passages": [passages[d] for d in negatives[qid]],
            }
        )
    if without_negatives:
        log.warning(
            "%d queries left out: BM25 found no negative for them (%s)",
            len(without_negatives),
            first_few(without_negatives),
        )
    write_parquet(out_path, pa.Table.from_pylist(rows, schema=TRAIN_GROUPS_SCHEMA))
    return len(rows)
