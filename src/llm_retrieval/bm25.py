"""The lexical baseline: BM25 with bm25s, set up like Pyserini's flat BM25 (k1=0.9, b=0.4).

Title and text are indexed as one field ("flat"), English stopwords are removed and
tokens stemmed; PROTOCOL.md reports this lands within about a point of Pyserini.
"""

from __future__ import annotations

from pathlib import Path

import bm25s
import Stemmer

from .atomic import atomic_path
from .data.canonical import CORPUS_SCHEMA, check_schema, iter_corpus_batches, read_parquet
from .prompts import document_text
from .runs import drop_self_hits, write_run


def _tokenize(texts: list[str], params: dict):
    stemmer = Stemmer.Stemmer(params["stemmer"]) if params.get("stemmer") else None
    return bm25s.tokenize(texts, stopwords=params["stopwords"], stemmer=stemmer, show_progress=False)


def build_index(corpus_path: str | Path, index_dir: str | Path, params: dict, use_title: bool = True) -> int:
    texts = []
    for batch in iter_corpus_batches(corpus_path):
        rows = batch.to_pydict()
        texts.extend(document_text(t, x, use_title) for t, x in zip(rows["title"], rows["text"]))
    retriever = bm25s.BM25(k1=params["k1"], b=params["b"], method="lucene")
    retriever.index(_tokenize(texts, params), show_progress=False)
    with atomic_path(index_dir, is_dir=True) as tmp:
        retriever.save(str(tmp))
    return len(texts)


def corpus_ids(corpus_path: str | Path) -> list[str]:
    check_schema(corpus_path, CORPUS_SCHEMA)
    return read_parquet(corpus_path, columns=["id"]).column("id").to_pylist()


def bm25_search(
    index_dir: str | Path, doc_ids: list[str], queries: dict[str, str], depth: int, params: dict
) -> dict[str, list[tuple[str, float]]]:
    """Top-``depth`` (doc id, score) per query, best first."""
    retriever = bm25s.BM25.load(str(index_dir))
    query_ids = list(queries)
    k = min(depth, len(doc_ids))
    rows, scores = retriever.retrieve(
        _tokenize([queries[q] for q in query_ids], params), k=k, show_progress=False, n_threads=0
    )
    return {
        qid: [(doc_ids[i], float(s)) for i, s in zip(row, row_scores) if s > 0]
        for qid, row, row_scores in zip(query_ids, rows, scores)
    }


def bm25_run(
    index_dir: str | Path,
    corpus_path: str | Path,
    queries: dict[str, str],
    top_k: int,
    drop_self: bool,
    out_path: str | Path,
    params: dict,
) -> int:
    ranked = bm25_search(index_dir, corpus_ids(corpus_path), queries, top_k + 1 if drop_self else top_k, params)
    if drop_self:
        ranked = {qid: drop_self_hits(qid, hits)[:top_k] for qid, hits in ranked.items()}
    write_run(out_path, ranked, "bm25")
    return len(ranked)
