"""Exact inner-product search: one job reads a collection's corpus once and writes every query set's run.

Three backends, one ranking (scores in float32; ties ordered as trec_eval orders them):

- ``faiss-cpu`` (no GPU): shard by shard, a flat inner-product index over the float32-widened
  vectors, top-k per shard, then one vectorised merge (:func:`merge_hits`). Memory holds one shard.
- ``faiss-gpu``: the whole corpus in faiss-gpu fp16 flat inner-product indexes, on one GPU when it
  fits there, else sharded over all the job's GPUs (one index per GPU). Only index creation and the
  split over GPUs differ from faiss-cpu.
- ``torch`` (a GPU but no faiss-gpu): the corpus as fp16 on the GPUs, fp16 matmul with float32
  output, running top-k per GPU, the same merge.

The GPU memory the corpus needs is checked from the shard footers before anything is read
(:class:`GpuMemoryError` says what to set).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from tqdm import tqdm

from .atomic import atomic_path
from .embeddings import check_compatible, embedding_info, read_column, read_embeddings
from .runs import format_run_lines

GIB = 2**30
GPU_WORKSPACE_BYTES = 6 * GIB  # per GPU: query batch, score block, faiss temporary memory
SCORE_BLOCK_BYTES = 2 * GIB  # torch path: one (query batch x corpus block) float32 score matrix
FAISS_GPU_MAX_K = 2048  # faiss-gpu's limit on k for a flat index
ADD_BLOCK_ROWS = 2**16  # faiss-gpu path: rows widened to float32 per add (3584 dims: 0.9 GiB)
BACKENDS = ("auto", "faiss-cpu", "faiss-gpu", "torch")


class GpuMemoryError(RuntimeError):
    """The corpus does not fit in the GPU memory the search job has."""


@dataclass
class Hits:
    """Top hits per query, best first: ``scores`` float32 and ``rows`` (corpus row, -1 = none), both (nq, k)."""

    scores: np.ndarray
    rows: np.ndarray


# --- merge ------------------------------------------------------------------------


def _score_key(scores: np.ndarray) -> np.ndarray:
    """uint32 keys ordered as the float32 scores (larger score, larger key); finite scores give keys >= 1."""
    bits = np.ascontiguousarray(scores, dtype=np.float32).view(np.uint32)
    return np.where(bits >> 31, ~bits, bits | np.uint32(0x80000000))


def merge_hits(parts: Sequence[Hits], doc_ids: Sequence[str], depth: int) -> Hits:
    """The best ``depth`` hits per query over ``parts`` (each a per-shard top list over global corpus rows).

    Order: score descending, then doc id descending (trec_eval's order). Vectorised: one partition
    over all candidates by score, the doc ids consulted only where scores tie.
    """
    scores = np.concatenate([p.scores for p in parts], axis=1) if len(parts) > 1 else parts[0].scores
    rows = np.concatenate([p.rows for p in parts], axis=1) if len(parts) > 1 else parts[0].rows
    nq, total = scores.shape
    depth = min(depth, total)
    if nq == 0 or depth == 0:
        return Hits(np.empty((nq, 0), np.float32), np.empty((nq, 0), np.int64))
    key = _score_key(scores)
    key[rows < 0] = 0
    # Everything scoring at least the depth-th best (ties at the cut included), then a sort of those only.
    kth = np.partition(key, total - depth, axis=1)[:, total - depth]
    keep = key >= kth[:, None]
    counts = keep.sum(axis=1)
    width = int(counts.max())
    if width == total:
        cand_key, cand_col = key, np.broadcast_to(np.arange(total), key.shape)
    else:
        q, col = np.nonzero(keep)
        pos = np.arange(len(q)) - np.repeat(np.cumsum(counts) - counts, counts)
        cand_key = np.zeros((nq, width), np.uint32)
        cand_col = np.zeros((nq, width), np.int64)
        cand_key[q, pos], cand_col[q, pos] = key[q, col], col
    order = np.argsort(cand_key, axis=1, kind="stable")[:, ::-1]
    sorted_key = np.take_along_axis(cand_key, order, axis=1)
    cols = np.take_along_axis(cand_col, order, axis=1)
    tied = (sorted_key[:, 1:] == sorted_key[:, :-1]) & (sorted_key[:, 1:] > 0)
    for qi in np.flatnonzero(tied.any(axis=1)):
        cols[qi] = _break_ties(sorted_key[qi], cols[qi], rows[qi], doc_ids)
    cols = cols[:, :depth]
    out_rows = np.take_along_axis(rows, cols, axis=1)
    out_scores = np.take_along_axis(scores, cols, axis=1)
    invalid = np.take_along_axis(key, cols, axis=1) == 0
    out_rows[invalid] = -1
    return Hits(out_scores.astype(np.float32, copy=False), out_rows)


def _break_ties(keys: np.ndarray, cols: np.ndarray, rows: np.ndarray, doc_ids: Sequence[str]) -> np.ndarray:
    """Reorder runs of equal keys by doc id descending (rare: exact float32 ties)."""
    cols = cols.copy()
    start = 0
    while start < len(keys):
        end = start + 1
        while end < len(keys) and keys[end] == keys[start]:
            end += 1
        if end - start > 1 and keys[start] > 0:
            run = cols[start:end]
            cols[start:end] = sorted(run, key=lambda c: doc_ids[rows[c]], reverse=True)
        start = end
    return cols


# --- backends -----------------------------------------------------------------------


def cuda_devices() -> int:
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        return 0
    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def choose_backend(requested: str = "auto") -> str:
    if requested not in BACKENDS:
        raise ValueError(f"search backend {requested!r}: expected one of {', '.join(BACKENDS)}")
    faiss_gpus = getattr(faiss, "get_num_gpus", lambda: 0)()
    if requested == "faiss-gpu" and faiss_gpus == 0:
        raise ValueError(
            "search.backend: faiss-gpu, but the faiss installed here sees no GPU (faiss-cpu, or no "
            "GPU in this job); install requirements-gpu.txt (docs/search.md) or set search.backend: auto"
        )
    if requested != "auto":
        return requested
    if cuda_devices() == 0:
        return "faiss-cpu"
    return "faiss-gpu" if faiss_gpus > 0 else "torch"


def gpu_memory_plan(rows: int, dim: int, gpu_bytes: Sequence[int], what: str = "corpus") -> int:
    """How many of the job's GPUs hold the fp16 corpus: 1 when it fits on one, else all of them.

    Raises :class:`GpuMemoryError` (with the setting to change) when even all of them are too small.
    """
    need = rows * dim * 2
    if not gpu_bytes:
        raise GpuMemoryError(
            f"{what}: GPU search asked for, but this job sees no GPU; "
            f"set slurm.kinds.search.gpus >= 1 or search.backend: faiss-cpu"
        )
    usable = [max(0, b - GPU_WORKSPACE_BYTES) for b in gpu_bytes]
    if need <= usable[0]:
        return 1
    if need <= sum(usable):
        return len(gpu_bytes)
    per_gpu = min(gpu_bytes)
    wanted = math.ceil(need / max(1, per_gpu - GPU_WORKSPACE_BYTES))
    raise GpuMemoryError(
        f"{what}: {rows:,} x {dim} fp16 vectors need {need / GIB:.1f} GiB of GPU memory plus "
        f"{GPU_WORKSPACE_BYTES / GIB:.0f} GiB working space per GPU; this job has {len(gpu_bytes)} GPU(s) of "
        f"{per_gpu / GIB:.0f} GiB. Set slurm.kinds.search.gpus: {wanted} (or a slurm.gpu_model with more memory)"
    )


def make_gpu_index(dim: int, gpu: int, rows: int) -> tuple[object, faiss.Index]:
    """(resources, index): a faiss-gpu fp16 flat inner-product index on one GPU with room for ``rows``.

    The memory for all rows is reserved before the first add: otherwise each add grows faiss's device
    vector (new buffer, copy, free), peaking near twice the store, and MS MARCO (59 GiB fp16 on one 80 GB
    GPU) runs out during its third shard. The resources must outlive the index.
    """
    resources = faiss.StandardGpuResources()
    config = faiss.GpuIndexFlatConfig()
    config.useFloat16 = True  # fp16 storage and GEMM, float32 scores
    config.device = gpu
    index = faiss.GpuIndexFlatIP(resources, dim, config)
    index.reserveMemory(rows)
    return resources, index


def _add_in_blocks(index: faiss.Index, vectors: np.ndarray) -> None:
    """Add stored (fp16) rows, widened to float32 block by block: never a float32 copy of a whole shard."""
    for start in range(0, len(vectors), ADD_BLOCK_ROWS):
        index.add(np.ascontiguousarray(vectors[start : start + ADD_BLOCK_ROWS], dtype=np.float32))


def _gpu_bytes() -> list[int]:
    import torch

    return [torch.cuda.get_device_properties(i).total_memory for i in range(torch.cuda.device_count())]


def _search_faiss_cpu(queries: np.ndarray, shards: Sequence[Path], depth: int, batch: int) -> tuple[list, list]:
    parts, doc_ids = [], []
    for shard in tqdm(shards, desc="search shards", unit="shard", disable=None):
        ids, vectors = read_embeddings(shard)
        if ids:
            index = faiss.IndexFlatIP(vectors.shape[1])
            index.add(vectors)
            parts.append(_faiss_search(index, queries, min(depth, len(ids)), batch, len(doc_ids)))
        doc_ids += ids
    return parts, doc_ids


def _faiss_search(index, queries: np.ndarray, k: int, batch: int, offset: int = 0) -> Hits:
    scores = np.empty((len(queries), k), np.float32)
    rows = np.empty((len(queries), k), np.int64)
    for start in range(0, len(queries), batch):
        scores[start : start + batch], rows[start : start + batch] = index.search(queries[start : start + batch], k)
    return Hits(scores, np.where(rows >= 0, rows + offset, -1))


def _search_faiss_gpu(
    queries: np.ndarray, shards: Sequence[Path], depth: int, batch: int, num_gpus: int
) -> tuple[list, list]:
    """One fp16 index per GPU; each shard's rows split over the GPUs (faiss's own IndexShards takes a
    single add() only, and the corpus arrives shard by shard). Each index reserves its share of the
    corpus (row counts from the shard footers) before the first add. Labels map back to corpus rows."""
    if depth > FAISS_GPU_MAX_K:
        raise ValueError(f"faiss-gpu searches at most k={FAISS_GPU_MAX_K}; top_k {depth} needs search.backend: torch")
    infos = [embedding_info(shard) for shard in shards]
    share = np.zeros(num_gpus, np.int64)
    for _, _, rows in infos:
        share += [len(piece) for piece in np.array_split(np.arange(rows), num_gpus)]
    dim = max((dim for dim, _, rows in infos if rows), default=0)
    gpus = [make_gpu_index(dim, gpu, int(share[gpu])) for gpu in range(num_gpus)] if share.sum() else []
    owned, doc_ids = [[] for _ in range(num_gpus)], []
    for shard in tqdm(shards, desc="load shards", unit="shard", disable=None):
        ids, vectors = read_embeddings(shard, dtype=None)  # as stored (fp16): widened per block when added
        for gpu, piece in enumerate(np.array_split(np.arange(len(ids)), num_gpus)):
            if len(piece):
                _add_in_blocks(gpus[gpu][1], vectors[piece[0] : piece[-1] + 1])
                owned[gpu].append(piece + len(doc_ids))
        doc_ids += ids
    parts = []
    for (_, index), rows in zip(gpus, owned):
        if rows:
            rows = np.concatenate(rows)
            hits = _faiss_search(index, queries, min(depth, len(rows)), batch)
            parts.append(Hits(hits.scores, np.where(hits.rows >= 0, rows[np.maximum(hits.rows, 0)], -1)))
    return parts, doc_ids


def _search_torch(
    queries: np.ndarray, shards: Sequence[Path], depth: int, batch: int, devices: Sequence[str], block_rows: int = 2**20
) -> tuple[list, list]:
    """fp16 corpus spread over ``devices``; per device a running top-k over blocks of rows."""
    import torch

    blocks: dict[str, list[tuple[int, object]]] = {d: [] for d in devices}
    doc_ids: list[str] = []
    for shard in tqdm(shards, desc="load shards", unit="shard", disable=None):
        ids, vectors = read_embeddings(shard, dtype=None)
        for device, piece in zip(devices, np.array_split(np.arange(len(ids)), len(devices))):
            for start in range(0, len(piece), block_rows):
                rows = piece[start : start + block_rows]
                tensor = torch.from_numpy(np.ascontiguousarray(vectors[rows[0] : rows[-1] + 1], np.float16))
                blocks[device].append((len(doc_ids) + int(rows[0]), tensor.to(device)))
        doc_ids += ids
    parts = []
    for device, device_blocks in blocks.items():
        if device_blocks:
            parts.append(_torch_topk(queries, device_blocks, min(depth, len(doc_ids)), batch, device))
    return parts, doc_ids


def _torch_topk(queries: np.ndarray, blocks, depth: int, batch: int, device: str) -> Hits:
    import torch

    nq = len(queries)
    widest = max((block.shape[0] for _, block in blocks), default=1)
    batch = max(1, min(batch, SCORE_BLOCK_BYTES // (4 * widest)))
    scores, rows = np.empty((nq, 0), np.float32), np.empty((nq, 0), np.int64)
    out_scores, out_rows = [], []
    for start in range(0, nq, batch):
        q = torch.from_numpy(queries[start : start + batch]).to(device, torch.float16)
        best_s, best_r = None, None
        for offset, block in blocks:
            s = _matmul_fp32(q, block)
            k = min(depth, s.shape[1])
            top_s, top_r = torch.topk(s, k, dim=1)
            top_r = top_r + offset
            if best_s is not None:
                top_s, top_r = torch.cat([best_s, top_s], 1), torch.cat([best_r, top_r], 1)
                top_s, pick = torch.topk(top_s, min(depth, top_s.shape[1]), dim=1)
                top_r = torch.gather(top_r, 1, pick)
            best_s, best_r = top_s, top_r
        out_scores.append(best_s.cpu().numpy())
        out_rows.append(best_r.cpu().numpy())
    if out_scores:
        scores, rows = np.concatenate(out_scores), np.concatenate(out_rows)
    return Hits(scores.astype(np.float32), rows.astype(np.int64))


def _matmul_fp32(q, block):
    """q (b, d) @ block (n, d)^T with fp16 inputs and float32 output (fp32 accumulation on GPUs)."""
    import torch

    if q.is_cuda:
        return torch.mm(q, block.T, out_dtype=torch.float32)
    return torch.mm(q.float(), block.float().T)  # CPU: no fp16 GEMM worth having


def search_shards(
    queries: np.ndarray,
    shards: Sequence[str | Path],
    depth: int,
    backend: str = "faiss-cpu",
    batch: int = 4096,
    devices: Sequence[str] | None = None,
    num_gpus: int = 1,
) -> tuple[Hits, list]:
    """Top-``depth`` hits per query over all shards, best first, and the corpus ids the rows index."""
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    shards = [Path(s) for s in shards]
    if backend == "faiss-cpu":
        parts, doc_ids = _search_faiss_cpu(queries, shards, depth, batch)
    elif backend == "faiss-gpu":
        parts, doc_ids = _search_faiss_gpu(queries, shards, depth, batch, num_gpus)
    elif backend == "torch":
        devices = list(devices or [f"cuda:{i}" for i in range(cuda_devices())] or ["cpu"])
        parts, doc_ids = _search_torch(queries, shards, depth, batch, devices[:num_gpus] if num_gpus else devices)
    else:
        raise ValueError(f"search backend {backend!r}: expected one of {', '.join(BACKENDS[1:])}")
    if not parts:
        return Hits(np.empty((len(queries), 0), np.float32), np.empty((len(queries), 0), np.int64)), doc_ids
    return merge_hits(parts, doc_ids, depth), doc_ids


def ranked_lists(
    query_ids: Sequence[str], hits: Hits, doc_ids: Sequence[str], top_k: int, drop_self: bool
) -> dict[str, list[tuple[str, float]]]:
    """(doc id, score) per query, best first, cut at ``top_k`` after BEIR's self-hit rule."""
    ranked = {}
    for qid, scores, rows in zip(query_ids, hits.scores, hits.rows):
        hits_q = [(doc_ids[r], float(s)) for s, r in zip(scores, rows) if r >= 0]
        if drop_self:
            hits_q = [(doc, s) for doc, s in hits_q if doc != qid]
        ranked[qid] = hits_q[:top_k]
    return ranked


# --- the search job -----------------------------------------------------------------


def search_collection(
    queries_path: str | Path,
    shard_paths: Sequence[str | Path],
    query_sets: Sequence[str],
    top_k: int,
    drop_self: bool,
    out_dir: str | Path,
    tag: str,
    backend: str = "auto",
    log=None,
) -> dict[str, int]:
    """Search every query set of one collection in one pass over the corpus; write ``<out_dir>/<set>.trec``.

    The folder appears only when every run file in it is complete (a killed job leaves none).
    """
    for shard in shard_paths:
        check_compatible(queries_path, shard)
    backend = choose_backend(backend)
    num_gpus = 1
    if backend in ("faiss-gpu", "torch") and cuda_devices():
        dims = [embedding_info(s) for s in shard_paths]
        rows = sum(info[2] for info in dims)
        dim = max((info[0] for info in dims), default=0)
        num_gpus = gpu_memory_plan(rows, dim, _gpu_bytes(), what=f"{Path(queries_path).parent.name} corpus")
    if log:
        log.info("search backend %s on %d GPU(s)", backend, num_gpus if backend != "faiss-cpu" else 0)
    ids, vectors = read_embeddings(queries_path)
    sets = read_column(queries_path, "query_set")
    depth = top_k + 1 if drop_self else top_k  # one spare slot for the self-hit that is dropped
    hits, doc_ids = search_shards(vectors, shard_paths, depth, backend, num_gpus=num_gpus)
    counts = {}
    with atomic_path(out_dir, is_dir=True) as tmp:
        for query_set in query_sets:
            chosen = np.array([i for i, qs in enumerate(sets) if qs == query_set], dtype=np.int64)
            ranked = ranked_lists(
                [ids[i] for i in chosen], Hits(hits.scores[chosen], hits.rows[chosen]), doc_ids, top_k, drop_self
            )
            (tmp / f"{query_set}.trec").write_text(format_run_lines(ranked, tag), encoding="utf-8")
            counts[query_set] = len(ranked)
    return counts


def dense_search(
    query_ids: Sequence[str],
    query_vectors: np.ndarray,
    shard_paths: Sequence[str | Path],
    top_k: int,
    drop_self: bool,
    out_path: str | Path,
    tag: str,
    backend: str = "faiss-cpu",
) -> int:
    """One query set's run file from in-memory query vectors (tests, notebooks)."""
    from .runs import write_run

    depth = top_k + 1 if drop_self else top_k
    hits, doc_ids = search_shards(query_vectors, shard_paths, depth, choose_backend(backend))
    ranked = ranked_lists(query_ids, hits, doc_ids, top_k, drop_self)
    write_run(out_path, ranked, tag)
    return len(ranked)
