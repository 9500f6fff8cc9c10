"""Exact inner-product search over the corpus shards with FAISS.

Shards are searched one at a time and their top-k lists merged, so memory holds one
shard (MS MARCO: 8.8M x 3584 floats would be 126 GB as one index), and the result is
the same as one flat index over everything.
"""
from __future__ import annotations

import heapq
from pathlib import Path
from typing import Sequence

import faiss
import numpy as np
from tqdm import tqdm

from .embeddings import read_embeddings
from .runs import drop_self_hits, write_run


def make_index(dim: int) -> faiss.Index:
    index = faiss.IndexFlatIP(dim)
    if hasattr(faiss, "get_num_gpus") and faiss.get_num_gpus() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    return index


def search_shards(query_vectors: np.ndarray, shard_paths: Sequence[str | Path], depth: int,
                  batch_size: int = 4096) -> list[list[tuple[str, float]]]:
    """Top-``depth`` (doc id, score) per query over all shards, best first."""
    merged: list[list[tuple[float, str]]] = [[] for _ in range(len(query_vectors))]
    for shard in tqdm(shard_paths, desc="search shards", unit="shard", disable=None):
        doc_ids, doc_vectors = read_embeddings(shard)
        if not doc_ids:
            continue
        if doc_vectors.shape[1] != query_vectors.shape[1]:
            raise ValueError(f"{shard}: embedding dim {doc_vectors.shape[1]} != query dim {query_vectors.shape[1]}")
        index = make_index(doc_vectors.shape[1])
        index.add(doc_vectors)
        k = min(depth, len(doc_ids))
        for start in range(0, len(query_vectors), batch_size):
            scores, rows = index.search(query_vectors[start:start + batch_size], k)
            for offset, (row_scores, row_ids) in enumerate(zip(scores, rows)):
                hits = merged[start + offset]
                hits.extend((float(s), doc_ids[i]) for s, i in zip(row_scores, row_ids) if i >= 0)
                # Ties broken by doc id descending, as trec_eval sorts, so the order is reproducible.
                merged[start + offset] = heapq.nlargest(depth, hits)
    return [[(doc, score) for score, doc in hits] for hits in merged]


def dense_search(query_ids: Sequence[str], query_vectors: np.ndarray, shard_paths: Sequence[str | Path],
                 top_k: int, drop_self: bool, out_path: str | Path, tag: str) -> int:
    depth = top_k + 1 if drop_self else top_k  # one spare slot for the self-hit that is dropped
    results = search_shards(query_vectors, shard_paths, depth)
    ranked = {}
    for qid, hits in zip(query_ids, results):
        ranked[qid] = (drop_self_hits(qid, hits) if drop_self else hits)[:top_k]
    write_run(out_path, ranked, tag)
    return len(ranked)
