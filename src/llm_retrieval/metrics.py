"""Scoring runs with pytrec_eval, as PROTOCOL.md specifies.

- ``ndcg_cut_3/5/10``, ``recall_10/100/200/1000`` and full-depth ``recip_rank`` from pytrec_eval
  (nDCG@3: QReCC, nDCG@5: ToolBench, as Luo et al. 2024 report them);
- ``mrr_10``: ``recip_rank`` on each query's top 10, cut after sorting the way trec_eval
  sorts (score descending, ties by doc id descending), since ``recip_rank.10`` silently
  means full depth;
- a query in the qrels with no run entry scores zero (trec_eval ``-c``);
- ``relevance_level`` (TREC DL: 2) applies to recall-type measures; nDCG uses the grades.
"""

from __future__ import annotations

import pytrec_eval

from .evaluation_kinds import RETRIEVAL_MEASURES
from .runs import Run

MEASURES = {"ndcg_cut.3,5,10", "recall.10,100,200,1000", "recip_rank"}
REPORTED = RETRIEVAL_MEASURES  # the names a table's `measure` may use (checked at DAG build)


def trec_order(hits: dict[str, float]) -> list[tuple[str, float]]:
    return sorted(hits.items(), key=lambda item: (item[1], item[0]), reverse=True)


def cut_run(run: Run, depth: int) -> Run:
    return {qid: dict(trec_order(hits)[:depth]) for qid, hits in run.items()}


def _plain(run: Run) -> Run:
    # pytrec_eval raises TypeError on numpy floats and needs str ids.
    return {str(q): {str(d): float(s) for d, s in hits.items()} for q, hits in run.items()}


def evaluate(run: Run, qrels: dict[str, dict[str, int]], relevance_level: int = 1) -> dict:
    """``{"aggregate": {measure: mean}, "per_query": {qid: {measure: value}}, "num_queries": n}``."""
    qrels = {str(q): {str(d): int(r) for d, r in docs.items()} for q, docs in qrels.items()}
    run = _plain(run)
    full = pytrec_eval.RelevanceEvaluator(qrels, MEASURES, relevance_level=relevance_level).evaluate(run)
    top10 = pytrec_eval.RelevanceEvaluator(qrels, {"recip_rank"}, relevance_level=relevance_level).evaluate(
        cut_run(run, 10)
    )
    per_query = {}
    for qid in sorted(qrels):
        scores = {m: float(full.get(qid, {}).get(m, 0.0)) for m in REPORTED if m != "mrr_10"}
        scores["mrr_10"] = float(top10.get(qid, {}).get("recip_rank", 0.0))
        per_query[qid] = scores
    count = len(per_query)
    aggregate = {m: (sum(s[m] for s in per_query.values()) / count if count else 0.0) for m in REPORTED}
    return {
        "aggregate": aggregate,
        "per_query": per_query,
        "num_queries": count,
        "num_queries_without_results": sum(1 for q in qrels if q not in run),
        "relevance_level": relevance_level,
    }
