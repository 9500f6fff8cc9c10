"""What a collection is scored on, by kind, and the measures each kind computes.

Two kinds: ``retrieval`` (a corpus searched for each query, scored by pytrec_eval in
metrics.py) and ``sts`` (sentence pairs, the cosine of their embeddings against a gold
score, scored by Spearman correlation in sts.py, as MTEB's STS tasks). A collection's
kind follows from its source type. A table's measure is checked against these names when
the DAG is built (study.py), so a measure no job computes is a config error there, not
a KeyError when the table is made.

Light on purpose: the DAG build imports it (no pytrec_eval, no scipy).
"""

from __future__ import annotations

RETRIEVAL, STS = "retrieval", "sts"

# Every measure a retrieval metrics file holds (metrics.evaluate computes each).
RETRIEVAL_MEASURES = (
    "ndcg_cut_3",
    "ndcg_cut_5",
    "ndcg_cut_10",
    "recall_10",
    "recall_100",
    "recall_200",
    "recall_1000",
    "recip_rank",
    "mrr_10",
)
# Every measure an STS metrics file holds (sts.evaluate_pairs computes each): MTEB's main score
# for STS is cosine_spearman.
STS_MEASURES = ("cosine_spearman", "cosine_pearson")
MEASURES = {RETRIEVAL: RETRIEVAL_MEASURES, STS: STS_MEASURES}
# How papers print each measure (the report's tables, figures and summary use these names).
DISPLAY_NAMES = {
    "ndcg_cut_3": "nDCG@3",
    "ndcg_cut_5": "nDCG@5",
    "ndcg_cut_10": "nDCG@10",
    "recall_10": "R@10",
    "recall_100": "R@100",
    "recall_200": "R@200",
    "recall_1000": "R@1000",
    "recip_rank": "MRR",
    "mrr_10": "MRR@10",
    "cosine_spearman": "Spearman (cosine)",
    "cosine_pearson": "Pearson (cosine)",
}


def display_name(measure: str) -> str:
    """``measure`` as papers print it (nDCG@10 for ndcg_cut_10); an unknown key is returned as it is."""
    return DISPLAY_NAMES.get(measure, measure)


# Source types (data/sources.py) whose collections are sentence pairs, not a searched corpus.
STS_SOURCES = ("mteb_sts", "sts_local", "stdlib_sts")


def kind_of(collection: dict) -> str:
    """The evaluation kind of a collection's config entry."""
    return STS if collection["source"]["type"] in STS_SOURCES else RETRIEVAL


def unknown_measure(measure: str, kinds: set[str]) -> str | None:
    """Why ``measure`` is not computed for every kind in ``kinds`` (None when it is)."""
    missing = sorted(k for k in kinds if measure not in MEASURES[k])
    if not missing:
        return None
    known = "; ".join(f"{k}: {', '.join(MEASURES[k])}" for k in sorted(kinds))
    return f"measure {measure!r} is not computed for {' or '.join(missing)} collections (known measures, {known})"
