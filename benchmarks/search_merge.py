"""Top-k merge across corpus shards: the old heap merge vs the vectorised one, side by side in one run.

    python benchmarks/search_merge.py [--queries 6980] [--shards 8] [--hits 1001] [--docs 8841823]

MS MARCO dev's shape by default: 6,980 queries x 8 shards x 1,001 hits per shard over 8.8M doc ids
(MS MARCO's ids, whose string order differs from their numeric order). Prints both times, their
ratio, and checks that both merges return the same (doc, score) lists.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from llm_retrieval.search import Hits, merge_hits

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the old merge: a test oracle
from search_oracle import legacy_heap_merge


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--queries", type=int, default=6980)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--hits", type=int, default=1001)
    parser.add_argument("--docs", type=int, default=8_841_823)
    parser.add_argument("--check", type=int, default=500, help="queries compared hit by hit")
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    doc_ids = [str(i) for i in range(args.docs)]
    per = args.docs // args.shards
    parts = []
    for s in range(args.shards):
        # Inner products of unit vectors, best first per shard, as a shard search returns them.
        scores = -np.sort(-rng.normal(0.3, 0.05, size=(args.queries, args.hits)).astype(np.float32), axis=1)
        rows = rng.integers(s * per, (s + 1) * per, size=(args.queries, args.hits))
        parts.append(Hits(scores, rows))
    print(f"{args.queries:,} queries x {args.shards} shards x {args.hits:,} hits, {args.docs:,} doc ids")

    start = time.perf_counter()
    new = merge_hits(parts, doc_ids, args.hits)
    t_new = time.perf_counter() - start
    start = time.perf_counter()
    old = legacy_heap_merge(parts, doc_ids, args.hits)
    t_old = time.perf_counter() - start

    check = min(args.check, args.queries)
    same = all(
        [(doc_ids[r], float(s)) for s, r in zip(new.scores[q], new.rows[q]) if r >= 0] == old[q] for q in range(check)
    )
    print(f"{'merge':<22}{'seconds':>10}")
    print(f"{'heap (old)':<22}{t_old:>10.2f}")
    print(f"{'vectorised (new)':<22}{t_new:>10.2f}")
    print(f"speed-up: {t_old / t_new:.1f}x; same hits on {check} queries checked: {same}")


if __name__ == "__main__":
    main()
