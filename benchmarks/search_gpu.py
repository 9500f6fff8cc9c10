"""GPU exact search: 6,980 random queries against 1M x 3584 fp16 vectors (MS MARCO dev's query count,
a 7B backbone's hidden size), with the search job's torch path (fp16 matmul, float32 scores, top-k).

    python benchmarks/search_gpu.py [--docs 1000000] [--queries 6980] [--depth 1000] [--faiss]
    python benchmarks/search_gpu.py --smoke     # CPU-sized run of the same code path (no GPU needed)

Prints seconds and effective TFLOP/s (2 x queries x docs x dim over the search time, the upload
of the corpus excluded and reported apart). --faiss also times a faiss-gpu fp16 flat index where
faiss-gpu is installed. Without CUDA (and without --smoke) it says so and exits with status 2.
"""

import argparse
import sys
import time

import numpy as np
import torch

from llm_retrieval.search import _torch_topk


def run(docs: int, queries: int, dim: int, depth: int, batch: int, device: str, block_rows: int) -> dict:
    gen = torch.Generator(device=device).manual_seed(0)
    start = time.perf_counter()
    blocks = []
    for offset in range(0, docs, block_rows):
        rows = min(block_rows, docs - offset)
        block = torch.randn(rows, dim, generator=gen, device=device, dtype=torch.float32)
        blocks.append((offset, torch.nn.functional.normalize(block, dim=1).to(torch.float16)))
    q = torch.nn.functional.normalize(torch.randn(queries, dim, generator=gen, device=device), dim=1)
    q = q.cpu().numpy()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    setup = time.perf_counter() - start
    _torch_topk(q[: min(batch, queries)], blocks, depth, batch, device)  # warm-up (cuBLAS handles, kernels)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    hits = _torch_topk(q, blocks, depth, batch, device)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    assert hits.rows.shape == (queries, depth)
    return {"setup": setup, "seconds": seconds, "tflops": 2 * queries * docs * dim / seconds / 1e12}


def run_faiss(docs: int, queries: int, dim: int, depth: int) -> dict | None:
    import faiss

    if getattr(faiss, "get_num_gpus", lambda: 0)() == 0:
        return None
    from llm_retrieval.search import make_gpu_index

    rng = np.random.default_rng(0)
    gpu_index = make_gpu_index(dim, 0, docs)  # (resources, index): the resources must outlive the index
    index = gpu_index[1]
    for offset in range(0, docs, 100_000):
        index.add(rng.standard_normal((min(100_000, docs - offset), dim), dtype=np.float32))
    q = rng.standard_normal((queries, dim), dtype=np.float32)
    index.search(q[:64], depth)
    start = time.perf_counter()
    index.search(q, depth)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "tflops": 2 * queries * docs * dim / seconds / 1e12}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=1_000_000)
    parser.add_argument("--queries", type=int, default=6980)
    parser.add_argument("--dim", type=int, default=3584)
    parser.add_argument("--depth", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--block-rows", type=int, default=2**20)
    parser.add_argument("--faiss", action="store_true")
    parser.add_argument("--smoke", action="store_true", help="CPU-sized run: 64 queries x 20,000 x 256")
    args = parser.parse_args(argv)
    if args.smoke:
        result = run(20_000, 64, 256, 100, 64, "cpu", 8192)
        print(f"smoke (CPU, 64 x 20,000 x 256): {result['seconds']:.3f} s, {result['tflops']:.4f} TFLOP/s")
        return
    if not torch.cuda.is_available():
        print("search_gpu: no CUDA device; not run (use --smoke for the CPU-sized path)", file=sys.stderr)
        sys.exit(2)
    name = torch.cuda.get_device_name(0)
    result = run(args.docs, args.queries, args.dim, args.depth, args.batch, "cuda:0", args.block_rows)
    print(f"{args.queries:,} queries x {args.docs:,} x {args.dim} fp16, top-{args.depth}, on {name}")
    print(
        f"torch matmul + top-k: {result['seconds']:.3f} s, {result['tflops']:.1f} TFLOP/s effective "
        f"(corpus generation and upload {result['setup']:.1f} s, not counted)"
    )
    if args.faiss:
        faiss_result = run_faiss(args.docs, args.queries, args.dim, args.depth)
        if faiss_result is None:
            print("faiss-gpu: not installed here (requirements-gpu.txt)")
        else:
            print(f"faiss-gpu fp16 flat IP: {faiss_result['seconds']:.3f} s, {faiss_result['tflops']:.1f} TFLOP/s")


if __name__ == "__main__":
    main()
