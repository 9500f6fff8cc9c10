"""Paired tests against the anchor backbone (Base), Holm's correction, bootstrap intervals.

Every test pairs per-query values: the two runs must have scored exactly the same queries
(the metrics files hold every judged query, a query without results counting zero), so a
difference in the query sets is an error (:class:`QuerySetMismatch`), never silently reduced
to the overlap.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

TESTS = ("ttest", "randomisation")
_CHUNK = 200  # resamples drawn at once: bounds memory on large query sets


class QuerySetMismatch(ValueError):
    """Two runs compared query by query did not score the same queries."""


def paired_values(
    candidate: Mapping[str, float], anchor: Mapping[str, float], what: str = ""
) -> tuple[np.ndarray, np.ndarray]:
    """The two runs' per-query values in one query order; different query sets raise."""
    if set(candidate) != set(anchor):
        only_c = sorted(set(candidate) - set(anchor))
        only_a = sorted(set(anchor) - set(candidate))
        raise QuerySetMismatch(
            f"{what or 'paired comparison'}: the runs scored different queries "
            f"({len(only_c)} only in the candidate, e.g. {only_c[:3]}; {len(only_a)} only in the anchor, "
            f"e.g. {only_a[:3]}); rerun the evaluation of both runs against the same qrels"
        )
    queries = sorted(candidate)
    return (np.array([candidate[q] for q in queries], dtype=float), np.array([anchor[q] for q in queries], dtype=float))


def paired_ttest(a: np.ndarray, b: np.ndarray) -> float:
    """Two-sided p-value of the paired t-test; identical runs give 1, a constant shift 0."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    if len(diff) < 2:
        return 1.0
    if np.allclose(diff, diff[0]):
        return 1.0 if np.isclose(diff[0], 0.0) else 0.0
    from scipy import stats  # here, not at import: the DAG build imports this package and not scipy

    return float(stats.ttest_rel(a, b).pvalue)


def paired_randomisation(a: np.ndarray, b: np.ndarray, permutations: int = 10000, seed: int = 0) -> float:
    """Two-sided p-value of the paired randomisation (sign-flip) test on the mean difference."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    if len(diff) == 0 or np.allclose(diff, 0.0):
        return 1.0
    observed = abs(diff.mean())
    rng = np.random.default_rng(seed)
    extreme, done = 0, 0
    while done < permutations:
        n = min(_CHUNK, permutations - done)
        keep = rng.integers(0, 2, size=(n, len(diff)), dtype=np.int8)  # 1: sign kept, 0: flipped
        flipped_sums = 2 * (keep.astype(np.float64) @ diff) - diff.sum()
        extreme += int(np.sum(np.abs(flipped_sums) / len(diff) >= observed - 1e-12))
        done += n
    return (extreme + 1) / (permutations + 1)


def paired_pvalue(a, b, test: str = "ttest", permutations: int = 10000, seed: int = 0) -> float:
    if test == "ttest":
        return paired_ttest(a, b)
    if test == "randomisation":
        return paired_randomisation(a, b, permutations, seed)
    raise ValueError(f"unknown significance test {test!r} (known: {', '.join(TESTS)})")


def holm(pvalues: Sequence[float]) -> list[float]:
    """Holm–Bonferroni adjusted p-values (step-down, monotone, capped at 1), in input order."""
    m = len(pvalues)
    order = sorted(range(m), key=lambda i: pvalues[i])
    adjusted, running = [0.0] * m, 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def bootstrap_mean_ci(
    groups: Sequence[Sequence[Sequence[float]]], resamples: int = 1000, seed: int = 0, level: float = 0.95
) -> tuple[float, float]:
    """Percentile CI of a mean of means, resampling queries within each dataset.

    ``groups`` is one entry per table row (dataset); each entry holds one or more per-query
    value lists (per-language collections averaged into the row). The statistic is the mean
    over rows of the mean over the row's collections of each collection's query mean.
    """
    rng = np.random.default_rng(seed)
    total = np.zeros(resamples)
    for row in groups:
        row_sum = np.zeros(resamples)
        for values in row:
            values = np.asarray(values, float)
            means = np.empty(resamples)
            for start in range(0, resamples, _CHUNK):
                n = min(_CHUNK, resamples - start)
                means[start : start + n] = values[rng.integers(0, len(values), size=(n, len(values)))].mean(axis=1)
            row_sum += means
        total += row_sum / len(row)
    total /= len(groups)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(total, [tail, 100 - tail])
    return float(low), float(high)


def win_tie_loss(a: np.ndarray, b: np.ndarray, tol: float = 1e-9) -> tuple[int, int, int]:
    """Queries on which ``a`` beats, ties or loses to ``b``."""
    diff = np.asarray(a, float) - np.asarray(b, float)
    return int(np.sum(diff > tol)), int(np.sum(np.abs(diff) <= tol)), int(np.sum(diff < -tol))
