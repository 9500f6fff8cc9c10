"""Encoding texts to vectors: length-sorted batches, resumable chunks, one process per GPU."""
from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pyarrow.parquet as pq
import torch
import torch.nn.functional as F
from tqdm import tqdm

from .embeddings import merge_embeddings, write_embeddings
from .data.canonical import CORPUS_SCHEMA, QUERIES_SCHEMA, check_schema, read_table
from .modeling import last_token_pool, load_text_model, load_tokenizer
from .prompts import Formatter, PrefixEosFormatter, PromptRepsFormatter, document_text


@dataclass(frozen=True)
class EncoderSpec:
    """Everything a worker process needs to rebuild the encoder (picklable across spawn)."""

    backbone: dict            # backbone.json record: path, revision, architecture, strip_think
    encoding: dict            # config `encoding` section
    adapter_dir: str | None = None  # supervised setting: trained LoRA adapter
    # Supervised format (``Query: ``/``Passage: `` + EOS) with whole-sequence limits, as in
    # training (config `training.max_length`); None: the zero-shot PromptReps prompts.
    max_length: dict | None = None

    def formatter_and_budgets(self, tokenizer) -> tuple[Formatter, dict[str, int]]:
        if self.max_length is not None:
            formatter = PrefixEosFormatter(tokenizer)
            return formatter, {kind: formatter.text_budget(kind, n) for kind, n in self.max_length.items()}
        formatter = PromptRepsFormatter(tokenizer, self.encoding["prompts"], self.backbone.get("strip_think", False))
        return formatter, dict(self.encoding["max_text_tokens"])


class Encoder:
    def __init__(self, spec: EncoderSpec, device: str):
        self.spec, self.device = spec, device
        self.tokenizer = load_tokenizer(spec.backbone["path"], spec.backbone.get("revision"))
        self.formatter, self.text_budget = spec.formatter_and_budgets(self.tokenizer)
        dtype = spec.encoding["dtype"] if device.startswith("cuda") else "float32"  # CPUs lack fast bf16 matmul
        self.model = load_text_model(spec.backbone["path"], spec.backbone["architecture"], dtype, device,
                                     spec.backbone.get("revision"), spec.adapter_dir)

    @torch.inference_mode()
    def encode(self, kind: str, texts: Sequence[str], desc: str = "") -> np.ndarray:
        ids = self.formatter.token_ids(kind, texts, self.text_budget[kind])
        # Longest first: batches of similar length waste little compute on padding,
        # and an out-of-memory error shows up in the first batch, not the last.
        order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
        batch_size = self.spec.encoding["batch_size"]
        out = None
        for start in tqdm(range(0, len(order), batch_size), desc=desc or f"encode {kind}", unit="batch",
                          mininterval=5, disable=None):
            rows = order[start:start + batch_size]
            vectors = self._forward([ids[i] for i in rows])
            if out is None:
                out = np.empty((len(ids), vectors.shape[1]), dtype=np.float32)
            out[rows] = vectors
        return out if out is not None else np.empty((0, 0), dtype=np.float32)

    def _forward(self, batch: list[list[int]]) -> np.ndarray:
        width = max(map(len, batch))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([seq + [pad] * (width - len(seq)) for seq in batch], device=self.device)
        mask = torch.tensor([[1] * len(seq) + [0] * (width - len(seq)) for seq in batch], device=self.device)
        hidden = self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        pooled = last_token_pool(hidden, mask).float()
        if self.spec.encoding["normalize"]:
            pooled = F.normalize(pooled, dim=-1)
        return pooled.cpu().numpy()


# --- queries --------------------------------------------------------------------

def encode_queries(queries_path: str | Path, out_path: str | Path, spec: EncoderSpec, query_sets: Sequence[str],
                   device: str | None = None) -> int:
    table = read_table(queries_path, QUERIES_SCHEMA)
    table = table.filter(pa.compute.is_in(table["query_set"], pa.array(list(query_sets)))).to_pydict()
    encoder = Encoder(spec, device or default_devices()[0])
    vectors = encoder.encode("query", table["text"], desc=f"queries {Path(queries_path).parent.name}")
    write_embeddings(out_path, table["id"], vectors, {"query_set": table["query_set"]})
    return len(table["id"])


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


def encode_corpus_shard(corpus_path: str | Path, shard: int, num_shards: int, out_path: str | Path,
                        spec: EncoderSpec, use_title: bool, chunk_rows: int = 16_384,
                        devices: list[str] | None = None) -> int:
    """Encode one shard of the corpus into ``out_path`` (id, embedding).

    Work is cut into chunks, each saved as soon as it is done under ``<out>.parts/``:
    a killed job resumes at the first missing chunk. Chunks are spread over all
    visible GPUs, one process each.
    """
    corpus_path, out_path = Path(corpus_path), Path(out_path)
    check_schema(corpus_path, CORPUS_SCHEMA)
    num_rows = pq.ParquetFile(corpus_path).metadata.num_rows
    start, end = shard_bounds(num_rows, shard, num_shards)
    parts_dir = out_path.with_name(out_path.name + ".parts")
    chunks = [(s, min(s + chunk_rows, end)) for s in range(start, end, chunk_rows)]
    todo = [c for c in chunks if not _part_path(parts_dir, c).exists()]
    if len(todo) < len(chunks):
        logging.getLogger(__name__).info("resuming %s: %d of %d chunks already encoded", out_path.name,
                                         len(chunks) - len(todo), len(chunks))
    devices = devices or default_devices()
    if len(devices) > 1 and len(todo) > 1:
        import torch.multiprocessing as mp

        mp.spawn(_encode_chunks_worker, nprocs=len(devices),
                 args=(devices, todo, str(corpus_path), str(parts_dir), spec, use_title), join=True)
    elif todo:
        _encode_chunks_worker(0, devices[:1], todo, str(corpus_path), str(parts_dir), spec, use_title)
    _merge_parts(parts_dir, chunks, out_path)
    return end - start


def _part_path(parts_dir: Path, chunk: tuple[int, int]) -> Path:
    return parts_dir / f"rows-{chunk[0]:010d}-{chunk[1]:010d}.parquet"


def _encode_chunks_worker(rank: int, devices: list[str], todo: list, corpus_path: str, parts_dir: str,
                          spec: EncoderSpec, use_title: bool) -> None:
    encoder = Encoder(spec, devices[rank])
    for chunk in todo[rank::len(devices)]:
        rows = read_rows(corpus_path, *chunk).to_pydict()
        texts = [document_text(t, x, use_title) for t, x in zip(rows["title"], rows["text"])]
        vectors = encoder.encode("passage", texts, desc=f"rows {chunk[0]}-{chunk[1]} on {devices[rank]}")
        write_embeddings(_part_path(Path(parts_dir), chunk), rows["id"], vectors)


def _merge_parts(parts_dir: Path, chunks: list, out_path: Path) -> None:
    if not chunks:
        write_embeddings(out_path, [], np.empty((0, 0), np.float32))
        return
    merge_embeddings(out_path, [_part_path(parts_dir, chunk) for chunk in chunks])
    shutil.rmtree(parts_dir, ignore_errors=True)
