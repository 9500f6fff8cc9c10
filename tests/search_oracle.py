"""The shard merge before the vectorised one (a heap per query and shard): the oracle that
tests/test_search.py and benchmarks/search_merge.py compare ``search.merge_hits`` against."""

from __future__ import annotations

import heapq
from collections.abc import Sequence

from llm_retrieval.search import Hits


def legacy_heap_merge(parts: Sequence[Hits], doc_ids: Sequence[str], depth: int) -> list[list[tuple[str, float]]]:
    nq = len(parts[0].scores) if parts else 0
    merged: list[list[tuple[float, str]]] = [[] for _ in range(nq)]
    for part in parts:
        for qi, (row_scores, row_ids) in enumerate(zip(part.scores, part.rows)):
            hits = merged[qi]
            hits.extend((float(s), doc_ids[i]) for s, i in zip(row_scores, row_ids) if i >= 0)
            merged[qi] = heapq.nlargest(depth, hits)
    return [[(doc, score) for score, doc in hits] for hits in merged]
