"""BM25 hard negatives for the offline demo, as RepLLaMA's training groups were mined.

Positives come from the qrels (relevance > 0); negatives are the top-``depth`` BM25
hits for the query that are not positives, best first. Queries with no positive are
left out (they cannot be trained on); the result is in TRAIN_GROUPS_SCHEMA.
"""
from __future__ import annotations

from pathlib import Path

import bm25s
import pyarrow as pa
import pyarrow.parquet as pq
import Stemmer
from tqdm import tqdm

from ..atomic import write_parquet
from ..data.canonical import (CORPUS_FILE, CORPUS_SCHEMA, QRELS_FILE, QUERIES_FILE, TRAIN_GROUPS_SCHEMA, DataError,
                              check_schema, read_qrels, read_queries)
from ..prompts import document_text


def mine_bm25_groups(collection_dir: str | Path, query_set: str, out_path: str | Path, depth: int, k1: float,
                     b: float, stopwords: str = "en", stemmer: str | None = "english", use_title: bool = True) -> int:
    """Write the training groups Parquet atomically; returns the number of groups."""
    collection_dir = Path(collection_dir)
    corpus_path = collection_dir / CORPUS_FILE
    check_schema(corpus_path, CORPUS_SCHEMA)
    corpus = pq.read_table(corpus_path, columns=CORPUS_SCHEMA.names).to_pydict()
    queries = read_queries(collection_dir / QUERIES_FILE, query_set)
    qrels = read_qrels(collection_dir / QRELS_FILE, query_set)
    index = {doc_id: i for i, doc_id in enumerate(corpus["id"])}
    unknown = sorted({d for rels in qrels.values() for d in rels if d not in index})
    if unknown:
        raise DataError(collection_dir / QRELS_FILE, f"qrels name documents missing from the corpus: {unknown[:5]}")

    positives = {qid: [d for d, rel in rels.items() if rel > 0] for qid, rels in qrels.items()}
    query_ids = [qid for qid in queries if positives.get(qid)]
    if not query_ids:
        raise DataError(collection_dir / QRELS_FILE, f"no query of set {query_set!r} has a positive document")
    hits = _bm25_top(corpus, [queries[q] for q in query_ids],
                     # deep enough that `depth` non-positives remain after removing positives
                     min(len(corpus["id"]), depth + max(len(positives[q]) for q in query_ids)),
                     k1, b, stopwords, stemmer, use_title)

    def passage(i: int) -> dict:
        return {"docid": corpus["id"][i], "title": corpus["title"][i] or "", "text": corpus["text"][i] or ""}

    rows = []
    for qid, ranked in zip(query_ids, tqdm(hits, desc="mine negatives", unit="query", disable=None, mininterval=5)):
        pos = set(positives[qid])
        negatives = [i for i in ranked if corpus["id"][i] not in pos][:depth]
        rows.append({"query_id": qid, "query": queries[qid],
                     "positive_passages": [passage(index[d]) for d in positives[qid]],
                     "negative_passages": [passage(i) for i in negatives]})
    write_parquet(out_path, pa.Table.from_pylist(rows, schema=TRAIN_GROUPS_SCHEMA))
    return len(rows)


def _bm25_top(corpus: dict, query_texts: list[str], k: int, k1: float, b: float, stopwords: str,
              stemmer: str | None, use_title: bool) -> list[list[int]]:
    stem = Stemmer.Stemmer(stemmer) if stemmer else None

    def tokenize(texts):
        return bm25s.tokenize(texts, stopwords=stopwords, stemmer=stem, show_progress=False)

    retriever = bm25s.BM25(k1=k1, b=b, method="lucene")
    retriever.index(tokenize([document_text(t, x, use_title) for t, x in zip(corpus["title"], corpus["text"])]),
                    show_progress=False)
    rows, scores = retriever.retrieve(tokenize(query_texts), k=k, show_progress=False, n_threads=0)
    # Only documents that share a term with the query (score > 0) count as BM25 hits.
    return [[int(i) for i, s in zip(row, row_scores) if s > 0] for row, row_scores in zip(rows, scores)]
