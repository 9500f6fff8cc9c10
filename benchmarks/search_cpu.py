"""CPU search of a small synthetic collection: the old pipeline vs the new, side by side in one run.

    python benchmarks/search_cpu.py [--docs 200000] [--dim 256] [--queries 2000] [--shards 8] [--depth 1001]

old: fp32 fixed_size_list shards, list decoding, faiss-cpu per shard, a heap merge per query and shard;
new: fp16 fixed_size_binary shards (llm_retrieval.embeddings), faiss-cpu per shard, the vectorised merge.
Both search the same (fp16-rounded) vectors, so the rankings must agree; prints seconds and the ratio.
"""

import argparse
import heapq
import tempfile
import time
from pathlib import Path

import faiss
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from llm_retrieval.embeddings import write_embeddings
from llm_retrieval.search import search_shards


def old_search(queries, paths, depth, batch=4096):
    """The search before this change: old shard format, heap merge (llm_retrieval.search at 2a2a6bc)."""
    merged = [[] for _ in range(len(queries))]
    for path in paths:
        table = pq.read_table(path)
        column = table.column("embedding").combine_chunks()
        vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, column.type.list_size)
        doc_ids = table.column("id").to_pylist()
        index = faiss.IndexFlatIP(vectors.shape[1])
        index.add(np.ascontiguousarray(vectors, np.float32))
        k = min(depth, len(doc_ids))
        for start in range(0, len(queries), batch):
            scores, rows = index.search(queries[start : start + batch], k)
            for offset, (row_scores, row_ids) in enumerate(zip(scores, rows)):
                hits = merged[start + offset]
                hits.extend((float(s), doc_ids[i]) for s, i in zip(row_scores, row_ids) if i >= 0)
                merged[start + offset] = heapq.nlargest(depth, hits)
    return [[doc for _, doc in hits] for hits in merged]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=200_000)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--shards", type=int, default=8)
    parser.add_argument("--depth", type=int, default=1001)
    parser.add_argument("--threads", type=int, default=1, help="faiss OpenMP threads (same for both)")
    args = parser.parse_args()
    faiss.omp_set_num_threads(args.threads)
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(args.docs, args.dim)).astype(np.float32)
    docs /= np.linalg.norm(docs, axis=1, keepdims=True)
    docs = docs.astype(np.float16).astype(np.float32)  # the values both formats then hold
    queries = rng.normal(size=(args.queries, args.dim)).astype(np.float32)
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    ids = [str(i) for i in range(args.docs)]
    with tempfile.TemporaryDirectory() as tmp:
        old_paths, new_paths = [], []
        for s, rows in enumerate(np.array_split(np.arange(args.docs), args.shards)):
            old_paths.append(Path(tmp, f"old-{s}.parquet"))
            pq.write_table(
                pa.table(
                    {
                        "id": pa.array([ids[i] for i in rows]),
                        "embedding": pa.FixedSizeListArray.from_arrays(pa.array(docs[rows].reshape(-1)), args.dim),
                    }
                ),
                old_paths[-1],
            )
            new_paths.append(Path(tmp, f"new-{s}.parquet"))
            write_embeddings(new_paths[-1], [ids[i] for i in rows], docs[rows])
        start = time.perf_counter()
        old = old_search(queries, old_paths, args.depth)
        t_old = time.perf_counter() - start
        start = time.perf_counter()
        hits, doc_ids = search_shards(queries, new_paths, args.depth, "faiss-cpu")
        t_new = time.perf_counter() - start
    new = [[doc_ids[r] for r in rows if r >= 0] for rows in hits.rows]
    agree = np.mean([a == b for a, b in zip(old, new)])
    print(
        f"{args.queries:,} queries x {args.docs:,} docs x {args.dim} dims, {args.shards} shards, "
        f"depth {args.depth}, {args.threads} thread(s)"
    )
    print(f"{'pipeline':<44}{'seconds':>10}")
    print(f"{'old (fp32 list shards, heap merge)':<44}{t_old:>10.2f}")
    print(f"{'new (fp16 binary shards, vectorised merge)':<44}{t_new:>10.2f}")
    print(f"speed-up: {t_old / t_new:.2f}x; identical rankings on {agree:.1%} of queries")


if __name__ == "__main__":
    main()
