"""Sentence similarity (STS) as an evaluation kind, scored as MTEB scores its STS tasks.

For each pair the cosine of the two sentences' embeddings is compared with the gold score;
the measure is the Spearman correlation over a query set's pairs (MTEB's ``cosine_spearman``,
its STS main score; ``cosine_pearson`` beside it). Metrics files hold fractions, as the
retrieval ones do; MTEB's leaderboard prints them x100.

Both sentences are encoded by the backbone exactly as queries are (``Encoder.encode("query",
...)``: the zero-shot prompt, or the supervised ``Query:`` format), as MTEB encodes both sides of
a symmetric STS task with one prompt type.

Significance: a correlation is not a mean of per-pair values, so the per-query tests of
retrieval tables do not apply. The metrics file keeps every pair's gold score and cosine;
:func:`paired_bootstrap_pvalue` resamples pairs (the same resample for both systems) and
recomputes both Spearman correlations, and :func:`bootstrap_ci` gives a percentile interval.
Steiger's test is not used: it assumes normal-theory correlations (Pearson's), which
Spearman's on tied STS grades is not.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .atomic import write_json
from .evaluation_kinds import STS

SIDES = ("sentence1", "sentence2")


def ranks(values: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties given their average rank (scipy.stats.rankdata's 'average')."""
    values = np.asarray(values, dtype=np.float64)
    order = np.argsort(values, kind="mergesort")
    sorted_values = values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_values)) + 1]
    ends = np.r_[starts[1:], len(values)]
    average = (starts + ends + 1) / 2.0  # mean of 1-based ranks start+1 .. end
    out = np.empty(len(values))
    out[order] = np.repeat(average, ends - starts)
    return out


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    x, y = x - x.mean(), y - y.mean()
    denominator = np.sqrt((x * x).sum() * (y * y).sum())
    return float((x * y).sum() / denominator) if denominator > 0 else float("nan")


def spearman(x: np.ndarray, y: np.ndarray) -> float:
    return pearson(ranks(x), ranks(y))


def cosines(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity, in float64 (a zero vector scores 0)."""
    first, second = np.asarray(first, dtype=np.float64), np.asarray(second, dtype=np.float64)
    norms = np.linalg.norm(first, axis=1) * np.linalg.norm(second, axis=1)
    dots = (first * second).sum(axis=1)
    return np.divide(dots, norms, out=np.zeros_like(dots), where=norms > 0)


def score_pairs(ids: Sequence[str], gold: np.ndarray, first: np.ndarray, second: np.ndarray) -> dict:
    """The metrics record of one query set: aggregate measures and every pair's values."""
    cos = cosines(first, second)
    gold = np.asarray(gold, dtype=np.float64)
    return {
        "kind": STS,
        "aggregate": {"cosine_spearman": spearman(gold, cos), "cosine_pearson": pearson(gold, cos)},
        "per_pair": {str(i): {"gold": float(g), "cosine": float(c)} for i, g, c in zip(ids, gold, cos)},
        "num_pairs": len(cos),
    }


STATISTICS = {"cosine_spearman": spearman, "cosine_pearson": pearson}  # measure -> its correlation


def _resampled(sets, resamples: int, rng, statistic) -> np.ndarray:
    """The mean over ``sets`` of ``statistic(gold, cos)``, pairs resampled within each set, per resample."""
    total = np.zeros(resamples)
    for gold, cos in sets:
        gold, cos = np.asarray(gold, dtype=np.float64), np.asarray(cos, dtype=np.float64)
        rows = rng.integers(0, len(gold), size=(resamples, len(gold)))
        total += np.array([statistic(gold[i], cos[i]) for i in rows])
    return total / len(sets)


def bootstrap_ci(
    sets, resamples: int = 1000, seed: int = 0, level: float = 0.95, statistic=spearman
) -> tuple[float, float]:
    """Percentile interval of the mean correlation over ``sets`` (``[(gold, cos), ...]``; one set: one STS
    task), pairs resampled with replacement within each set."""
    values = _resampled(sets, resamples, np.random.default_rng(seed), statistic)
    low, high = np.nanpercentile(values, [100 * (1 - level) / 2, 100 * (1 + level) / 2])
    return float(low), float(high)


def paired_bootstrap_pvalue(sets_a, sets_b, resamples: int = 1000, seed: int = 0, statistic=spearman) -> float:
    """Two-sided p-value of "a and b correlate equally" over the same pairs (paired bootstrap).

    ``sets_a`` / ``sets_b``: ``[(gold, cos), ...]`` of two systems on the same pairs, in the same order.
    Each resample draws the same pairs for both; the differences of the mean correlations are centred
    on the observed one, and the p-value is the share at least as far from zero as the observed
    (Efron & Tibshirani), with the +1 correction.
    """
    observed = np.mean([statistic(g, c) for g, c in sets_a]) - np.mean([statistic(g, c) for g, c in sets_b])
    seed_a, seed_b = np.random.default_rng(seed), np.random.default_rng(seed)  # the same draws for both
    diffs = _resampled(sets_a, resamples, seed_a, statistic) - _resampled(sets_b, resamples, seed_b, statistic)
    diffs = diffs[np.isfinite(diffs)]
    return float((np.sum(np.abs(diffs - observed) >= abs(observed)) + 1) / (len(diffs) + 1))


def per_pair_arrays(metrics: dict) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(pair ids, gold, cosine) from an STS metrics record, ids sorted (pairs line up across systems)."""
    ids = sorted(metrics["per_pair"])
    return (
        ids,
        np.array([metrics["per_pair"][i]["gold"] for i in ids]),
        np.array([metrics["per_pair"][i]["cosine"] for i in ids]),
    )


# --- the workflow's two steps ------------------------------------------------------------


def encode_sentences(
    pairs_path: str | Path, query_sets: Sequence[str], out_path: str | Path, spec, device: str | None = None
) -> int:
    """Embed both sentences of every pair (as queries), one file: ids ``<pair>``, column ``side``.

    Stored as float32: the correlation is computed from these vectors directly.
    """
    from .embeddings import write_embeddings
    from .encode import default_devices
    from .encoder import Encoder

    ids, sets, sides, texts = _sentences(pairs_path, query_sets)
    encoder = Encoder(spec, device or default_devices()[0])
    vectors = encoder.encode("query", texts, desc=f"sentences {Path(pairs_path).parent.name}")
    write_embeddings(out_path, ids, vectors, {"query_set": sets, "side": sides}, dtype="float32")
    return len(ids)


def _sentences(pairs_path, query_sets) -> tuple[list[str], list[str], list[str], list[str]]:
    from .data.sts import read_pairs

    ids, sets, sides, texts = [], [], [], []
    for query_set in query_sets:
        table = read_pairs(pairs_path, query_set).to_pydict()
        for side in SIDES:
            ids += table["id"]
            sets += [query_set] * len(table["id"])
            sides += [side] * len(table["id"])
            texts += table[side]
    return ids, sets, sides, texts


def evaluate_sts(pairs_path: str | Path, embeddings_path: str | Path, query_set: str, out_path: str | Path) -> dict:
    """Score one query set from the sentence embeddings; write the metrics JSON atomically."""
    from .data.canonical import DataError
    from .data.sts import read_pairs
    from .embeddings import read_column, read_embeddings

    pairs = read_pairs(pairs_path, query_set).to_pydict()
    ids, vectors = read_embeddings(embeddings_path)
    sets, sides = read_column(embeddings_path, "query_set"), read_column(embeddings_path, "side")
    rows = {(s, side, i): r for r, (i, s, side) in enumerate(zip(ids, sets, sides))}
    missing = [i for i in pairs["id"] if (query_set, SIDES[0], i) not in rows or (query_set, SIDES[1], i) not in rows]
    if missing:
        raise DataError(
            embeddings_path,
            f"no embedding for {len(missing)} pair(s) of {query_set!r} (first: {missing[:3]}); re-encode the sentences",
        )
    first = vectors[[rows[(query_set, SIDES[0], i)] for i in pairs["id"]]]
    second = vectors[[rows[(query_set, SIDES[1], i)] for i in pairs["id"]]]
    metrics = score_pairs(pairs["id"], np.array(pairs["score"]), first, second)
    write_json(out_path, metrics)
    return metrics
