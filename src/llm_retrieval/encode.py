"""The encoding job: one corpus shard (and the collection's queries) to vectors, in resumable chunks,
one model load per GPU; the encoder itself is :mod:`.encoder`."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import torch

from .corpus_sizes import check_actual_size
from .data.canonical import CORPUS_SCHEMA, QUERIES_SCHEMA, check_schema, read_table
from .embeddings import merge_embeddings, write_embeddings
from .encoder import Encoder, EncoderSpec
from .prompts import document_text

log = logging.getLogger(__name__)


# --- queries --------------------------------------------------------------------


def query_columns(queries_path: str | Path, query_sets: Sequence[str]) -> dict:
    """The id, text and query_set columns of the rows in `query_sets` (data.canonical.read_queries: one set as id -> text)."""
    table = read_table(queries_path, QUERIES_SCHEMA)
    return table.filter(pa.compute.is_in(table["query_set"], pa.array(list(query_sets)))).to_pydict()


def _encode_queries_with(encoder: Encoder, queries_path: str, out_path: str, query_sets: Sequence[str]) -> int:
    table = query_columns(queries_path, query_sets)
    prepared = encoder.prepare_queries(table["text"], table["id"])
    vectors = encoder.run(prepared, desc=f"queries {Path(queries_path).parent.name}")
    write_embeddings(out_path, table["id"], vectors, {"query_set": table["query_set"]})
    return len(table["id"])


def encode_queries(
    queries_path: str | Path,
    out_path: str | Path,
    spec: EncoderSpec,
    query_sets: Sequence[str],
    device: str | None = None,
) -> int:
    """The evaluated query sets of one collection, on their own (one model load)."""
    return _encode_queries_with(
        Encoder(spec, device or default_devices()[0]), str(queries_path), str(out_path), query_sets
    )


# --- corpus shards ----------------------------------------------------------------


def shard_bounds(num_rows: int, shard: int, num_shards: int) -> tuple[int, int]:
    """Contiguous, balanced row range of one shard."""
    if not 0 <= shard < num_shards:
        raise ValueError(f"shard {shard} out of range for {num_shards} shards")
    return num_rows * shard // num_shards, num_rows * (shard + 1) // num_shards


def read_rows(path: str | Path, start: int, end: int) -> pa.Table:
    """Rows [start, end) of a Parquet file, reading only the row groups that hold them."""
    reader = pq.ParquetFile(path)
    groups, offset, first = [], 0, None
    for index in range(reader.num_row_groups):
        size = reader.metadata.row_group(index).num_rows
        if offset + size > start and offset < end:
            groups.append(index)
            first = offset if first is None else first
        offset += size
    if not groups:
        return CORPUS_SCHEMA.empty_table()
    return reader.read_row_groups(groups, columns=CORPUS_SCHEMA.names).slice(start - first, end - start)


def default_devices() -> list[str]:
    count = torch.cuda.device_count()
    return [f"cuda:{i}" for i in range(count)] if count else ["cpu"]


@dataclass(frozen=True)
class QueriesTask:
    queries_path: str
    out_path: str
    query_sets: tuple


def encode_corpus_shard(
    corpus_path: str | Path,
    shard: int,
    num_shards: int,
    out_path: str | Path,
    spec: EncoderSpec,
    use_title: bool,
    chunk_rows: int = 16_384,
    devices: list[str] | None = None,
    queries: QueriesTask | None = None,
    estimated_documents: int | None = None,
) -> int:
    """Encode one shard of the corpus into ``out_path`` (id, embedding), and ``queries`` first if given.

    One model load per device for everything the job does: the first shard's job also encodes the
    collection's queries with the same load. Work is cut into chunks, each saved as soon as it is done
    under ``<out>.parts/``: a killed job resumes at the first missing chunk. Chunks are spread over all
    visible GPUs, one process each (queries on the first).
    """
    corpus_path, out_path = Path(corpus_path), Path(out_path)
    check_schema(corpus_path, CORPUS_SCHEMA)
    num_rows = pq.ParquetFile(corpus_path).metadata.num_rows
    if estimated_documents is not None:
        check_actual_size(corpus_path.parent.name, num_rows, estimated_documents, log)
    start, end = shard_bounds(num_rows, shard, num_shards)
    parts_dir = out_path.with_name(out_path.name + ".parts")
    chunks = [(s, min(s + chunk_rows, end)) for s in range(start, end, chunk_rows)]
    todo = [c for c in chunks if not _part_path(parts_dir, c).exists()]
    if len(todo) < len(chunks):
        logging.getLogger(__name__).info(
            "resuming %s: %d of %d chunks already encoded", out_path.name, len(chunks) - len(todo), len(chunks)
        )
    devices = devices or default_devices()
    if len(devices) > 1 and len(todo) > 1:
        import torch.multiprocessing as mp

        devices = devices[: len(todo)]
        mp.spawn(
            _encode_chunks_worker,
            nprocs=len(devices),
            args=(devices, todo, str(corpus_path), str(parts_dir), spec, use_title, queries),
            join=True,
        )
    elif todo or queries:
        _encode_chunks_worker(0, devices[:1], todo, str(corpus_path), str(parts_dir), spec, use_title, queries)
    _merge_parts(parts_dir, chunks, out_path)
    return end - start


def _part_path(parts_dir: Path, chunk: tuple[int, int]) -> Path:
    return parts_dir / f"rows-{chunk[0]:010d}-{chunk[1]:010d}.parquet"


def _encode_chunks_worker(
    rank: int,
    devices: list[str],
    todo: list,
    corpus_path: str,
    parts_dir: str,
    spec: EncoderSpec,
    use_title: bool,
    queries: QueriesTask | None = None,
) -> None:
    """One process per device: one model load, then its chunks in a three-stage pipeline.

    A reader thread reads and tokenises the next chunk (pinned batch tensors) while the GPU encodes
    this one; a writer thread saves each finished chunk (atomically: a part is whole or absent) while
    the GPU goes on. A failure stops the loop; chunks already encoded are still written on the way out.
    """
    from concurrent.futures import ThreadPoolExecutor

    if torch.device(devices[rank]).type == "cuda":
        # This process's current device before anything touches CUDA: pinned host buffers and the
        # caching allocator otherwise open a context on GPU 0 in every worker.
        torch.cuda.set_device(devices[rank])
    encoder = Encoder(spec, devices[rank])  # the one model load of this process
    if queries is not None and rank == 0:
        count = _encode_queries_with(encoder, queries.queries_path, queries.out_path, queries.query_sets)
        log.info("encoded %d queries", count)
    mine = todo[rank :: len(devices)]

    def read(chunk):
        rows = read_rows(corpus_path, *chunk).to_pydict()
        texts = [document_text(t, x, use_title) for t, x in zip(rows["title"], rows["text"])]
        return rows["id"], encoder.prepare_identified("passage", texts, rows["id"])

    def write(chunk, ids, vectors):
        write_embeddings(_part_path(Path(parts_dir), chunk), ids, vectors)

    with (
        ThreadPoolExecutor(1, thread_name_prefix="reader") as reader,
        ThreadPoolExecutor(1, thread_name_prefix="writer") as writer,
    ):
        ahead = reader.submit(read, mine[0]) if mine else None
        writes = []
        for k, chunk in enumerate(mine):
            ids, prepared = ahead.result()
            if k + 1 < len(mine):
                ahead = reader.submit(read, mine[k + 1])
            vectors = encoder.run(prepared, desc=f"rows {chunk[0]}-{chunk[1]} on {devices[rank]}")
            writes.append(writer.submit(write, chunk, ids, vectors))
            for done in [w for w in writes if w.done()]:
                writes.remove(done)
                done.result()  # a failed write stops the job here, not at the end
        for pending in writes:
            pending.result()


def _merge_parts(parts_dir: Path, chunks: list, out_path: Path) -> None:
    if not chunks:
        write_embeddings(out_path, [], np.empty((0, 0), np.float32))
        return
    merge_embeddings(out_path, [_part_path(parts_dir, chunk) for chunk in chunks])
    shutil.rmtree(parts_dir, ignore_errors=True)
