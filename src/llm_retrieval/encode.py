"""Encoding texts to vectors: token-budget batches, resumable chunks, one model load per GPU per job."""
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
from . import encoders
from .modeling import load_text_model, load_tokenizer
from .prompts import Formatter, PrefixEosFormatter, PromptRepsFormatter, document_text
from .corpus_sizes import check_actual_size
from .study import ConfigError

log = logging.getLogger(__name__)


class BatchBudgetError(ConfigError):
    """encoding.batch_tokens is smaller than one longest possible sequence."""


def token_batches(lengths: Sequence[int], budget: int) -> list[list[int]]:
    """Row indices grouped so that rows x longest <= budget, longest first.

    Sorting by length keeps padding low (neighbours have similar lengths); bounding the padded
    tokens rather than the row count keeps memory flat: short texts run in wide batches, long
    ones in narrow. Longest first: an out-of-memory error shows in the first batch, not the last.
    """
    order = sorted(range(len(lengths)), key=lambda i: -lengths[i])
    batches: list[list[int]] = []
    for i in order:
        if batches and (len(batches[-1]) + 1) * lengths[batches[-1][0]] <= budget:
            batches[-1].append(i)
        else:
            if lengths[i] > budget:
                raise BatchBudgetError(f"encoding.batch_tokens: {budget} cannot hold a sequence of {lengths[i]} tokens")
            batches.append([i])
    return batches


def padding_ratio(lengths: Sequence[int], batches: list[list[int]]) -> float:
    """Padded tokens / real tokens of a batching."""
    real = sum(lengths)
    padded = sum(len(b) * max(lengths[i] for i in b) for b in batches)
    return padded / real if real else 1.0


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
        instruction = self.encoding.get("instruction")  # the instruction axis: the collection's task sentence
        if self.max_length is not None and encoders.family(self.backbone["architecture"]).bidirectional:
            formatter = encoders.ClsSepFormatter(tokenizer)  # [CLS] text [SEP]; no instruction format of its own
            return formatter, {kind: formatter.text_budget(kind, n) for kind, n in self.max_length.items()}
        if self.max_length is not None:
            # An instruction does not take from the text's budget: limits count as without one.
            plain = PrefixEosFormatter(tokenizer)
            budgets = {kind: plain.text_budget(kind, n) for kind, n in self.max_length.items()}
            return (PrefixEosFormatter(tokenizer, instruction) if instruction else plain), budgets
        formatter = PromptRepsFormatter(tokenizer, self.encoding["prompts"], self.backbone.get("strip_think", False),
                                        instruction)
        return formatter, dict(self.encoding["max_text_tokens"])


class Encoder:
    def __init__(self, spec: EncoderSpec, device: str):
        self.spec, self.device = spec, device
        self.tokenizer = load_tokenizer(spec.backbone["path"], spec.backbone.get("revision"))
        self.formatter, self.text_budget = spec.formatter_and_budgets(self.tokenizer)
        dtype = spec.encoding["dtype"] if device.startswith("cuda") else "float32"  # CPUs lack fast bf16 matmul
        self.check_budget()
        self.model = load_text_model(spec.backbone["path"], spec.backbone["architecture"], dtype, device,
                                     spec.backbone.get("revision"), spec.adapter_dir)

    def longest_sequence(self, kind: str) -> int:
        prefix, suffix = self.formatter.pieces[kind]
        return len(prefix) + self.text_budget[kind] + len(suffix)

    def check_budget(self) -> None:
        """Every text must fit a batch alone, truncated as the format says: a smaller budget is a config error."""
        budget = self.spec.encoding["batch_tokens"]
        for kind in self.text_budget:
            longest = self.longest_sequence(kind)
            if longest > budget:
                raise BatchBudgetError(
                    f"encoding.batch_tokens: {budget} cannot hold the longest {kind} sequence of {longest} tokens "
                    f"({self.text_budget[kind]} text tokens + {longest - self.text_budget[kind]} template tokens "
                    f"of {self.spec.backbone.get('path')}); set encoding.batch_tokens to at least {longest}")

    # --- preparing (CPU, may run in a background thread) -------------------------------

    def shared_prefix(self, kind: str) -> list[int]:
        """Token ids every text of ``kind`` starts with, computed once when encoding.share_prefix is on.

        The zero-shot (PromptReps) format only: every text sits after the same chat-template prefix.
        """
        if self.spec.max_length is not None or not self.spec.encoding.get("share_prefix", False):
            return []
        return list(self.formatter.pieces[kind][0])

    def prepare(self, kind: str, texts: Sequence[str]) -> "Prepared":
        """Tokenise and plan the batches (CPU work: runs in the reader thread, beside the GPU)."""
        return self.prepare_ids(kind, self.formatter.token_ids(kind, texts, self.text_budget[kind]))

    def prepare_ids(self, kind: str, ids: list[list[int]], batches: list[list[int]] | None = None) -> "Prepared":
        """Batches of already formatted token ids (every one starting with shared_prefix(kind));
        ``batches`` (row indices) replaces the token-budget batching (benchmarks compare the two)."""
        if batches is None:
            batches = token_batches([len(x) for x in ids], self.spec.encoding["batch_tokens"])
        prefix = self.shared_prefix(kind)
        rest = [seq[len(prefix):] for seq in ids] if prefix else ids
        pad = self.tokenizer.pad_token_id
        pin = torch.device(self.device).type == "cuda"
        tensors = []
        for rows in batches:
            width = max(len(rest[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                input_ids[r, :len(rest[i])] = torch.tensor(rest[i])
                mask[r, :len(rest[i])] = 1
            tensors.append((input_ids.pin_memory(), mask.pin_memory()) if pin else (input_ids, mask))
        real = sum(map(len, ids))
        padded = sum(len(rows) * max(len(ids[i]) for i in rows) for rows in batches)
        return Prepared(kind, len(ids), batches, tensors, prefix, real, padded,
                        computed=sum(t.numel() for t, _ in tensors) + (len(prefix) if batches else 0))

    # --- running (GPU) ------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, kind: str, texts: Sequence[str], desc: str = "") -> np.ndarray:
        return self.run(self.prepare(kind, texts), desc)

    @torch.inference_mode()
    def run(self, prepared: "Prepared", desc: str = "") -> np.ndarray:
        """Forward every batch; GPU->host copies go to pinned memory without blocking the next batch."""
        if not prepared.batches:
            return np.empty((0, 0), dtype=np.float32)
        cache = self._prefix_cache(prepared.prefix) if prepared.prefix else None
        pending = []
        for rows, (input_ids, mask) in tqdm(list(zip(prepared.batches, prepared.tensors)),
                                            desc=desc or f"encode {prepared.kind}", unit="batch",
                                            mininterval=5, disable=None):
            input_ids = input_ids.to(self.device, non_blocking=True)
            mask = mask.to(self.device, non_blocking=True)
            pooled = self._forward(input_ids, mask, cache)
            if pooled.device.type == "cuda":
                host = torch.empty(pooled.shape, dtype=pooled.dtype, pin_memory=True)
                host.copy_(pooled, non_blocking=True)
                pending.append((rows, host))
            else:
                pending.append((rows, pooled))
        if torch.device(self.device).type == "cuda":
            torch.cuda.synchronize(self.device)  # every async copy has landed
        out = np.empty((prepared.count, pending[0][1].shape[1]), dtype=np.float32)
        for rows, host in pending:
            out[rows] = host.numpy()
        return out

    @torch.inference_mode()
    def forward_ids(self, batch: list[list[int]]) -> np.ndarray:
        """One batch of whole token sequences, right-padded (no shared prefix): for benchmarks."""
        width = max(map(len, batch))
        pad = self.tokenizer.pad_token_id
        input_ids = torch.tensor([seq + [pad] * (width - len(seq)) for seq in batch], device=self.device)
        mask = torch.tensor([[1] * len(seq) + [0] * (width - len(seq)) for seq in batch], device=self.device)
        return self._forward(input_ids, mask).cpu().numpy()

    def _prefix_cache(self, prefix: list[int]):
        """Keys/values of the shared prefix, one row; expanded to each batch by _forward."""
        key = tuple(prefix)
        if getattr(self, "_cached_prefix", (None,))[0] != key:
            ids = torch.tensor([prefix], device=self.device)
            past = self.model(input_ids=ids, use_cache=True).past_key_values
            layers = [(layer.keys, layer.values) for layer in past.layers]
            self._cached_prefix = (key, layers)
        return self._cached_prefix[1]

    def _forward(self, input_ids: torch.Tensor, mask: torch.Tensor, prefix_cache=None) -> torch.Tensor:
        with encoders.memory_guard(f"a batch of {input_ids.shape[0]} texts x {input_ids.shape[1]} tokens",
                                   "lower encoding.batch_tokens, or the input length (encoding.max_text_tokens, "
                                   "training.max_length for supervised, settings.<setting>.axes.passage_tokens)"):
            hidden = self._hidden(input_ids, mask, prefix_cache)
        pooled = encoders.pool(hidden, mask, encoders.pooling_of(self.spec.backbone)).float()
        if self.spec.encoding["normalize"]:
            pooled = F.normalize(pooled, dim=-1)
        return pooled

    def _hidden(self, input_ids: torch.Tensor, mask: torch.Tensor, prefix_cache=None) -> torch.Tensor:
        if prefix_cache is None:
            return self.model(input_ids=input_ids, attention_mask=mask).last_hidden_state
        from transformers import DynamicCache

        rows, width = input_ids.shape
        start = prefix_cache[0][0].shape[-2]
        # Expanded views, no copy: the model concatenates each batch's own keys after them.
        past = DynamicCache(ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1))
                                            for k, v in prefix_cache])
        full_mask = torch.cat([mask.new_ones(rows, start), mask], dim=1)
        positions = torch.arange(start, start + width, device=input_ids.device).expand(rows, -1)
        if self.spec.backbone["architecture"] == "qwen2_5_vl":
            # Multimodal rotary positions (temporal, height, width): for text all three are the 1-D position.
            positions = positions[None].expand(3, -1, -1)
        return self.model(input_ids=input_ids, attention_mask=full_mask, position_ids=positions,
                          past_key_values=past, use_cache=True).last_hidden_state


@dataclass
class Prepared:
    """One set of texts tokenised and cut into batches, ready for the GPU."""

    kind: str
    count: int
    batches: list
    tensors: list
    prefix: list
    real_tokens: int       # tokens of the formatted texts
    padded_tokens: int     # rows x longest, summed over batches, computing every token
    computed: int          # tokens the forward passes compute (padding included, shared prefix once)


# --- queries --------------------------------------------------------------------

def read_queries(queries_path: str | Path, query_sets: Sequence[str]) -> dict:
    table = read_table(queries_path, QUERIES_SCHEMA)
    return table.filter(pa.compute.is_in(table["query_set"], pa.array(list(query_sets)))).to_pydict()


def _encode_queries_with(encoder: "Encoder", queries_path: str, out_path: str, query_sets: Sequence[str]) -> int:
    table = read_queries(queries_path, query_sets)
    vectors = encoder.encode("query", table["text"], desc=f"queries {Path(queries_path).parent.name}")
    write_embeddings(out_path, table["id"], vectors, {"query_set": table["query_set"]})
    return len(table["id"])


def encode_queries(queries_path: str | Path, out_path: str | Path, spec: EncoderSpec, query_sets: Sequence[str],
                   device: str | None = None) -> int:
    """The evaluated query sets of one collection, on their own (one model load)."""
    return _encode_queries_with(Encoder(spec, device or default_devices()[0]), str(queries_path), str(out_path),
                                query_sets)


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


def encode_corpus_shard(corpus_path: str | Path, shard: int, num_shards: int, out_path: str | Path,
                        spec: EncoderSpec, use_title: bool, chunk_rows: int = 16_384,
                        devices: list[str] | None = None, queries: QueriesTask | None = None,
                        estimated_documents: int | None = None) -> int:
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
        logging.getLogger(__name__).info("resuming %s: %d of %d chunks already encoded", out_path.name,
                                         len(chunks) - len(todo), len(chunks))
    devices = devices or default_devices()
    if len(devices) > 1 and len(todo) > 1:
        import torch.multiprocessing as mp

        devices = devices[:len(todo)]
        mp.spawn(_encode_chunks_worker, nprocs=len(devices),
                 args=(devices, todo, str(corpus_path), str(parts_dir), spec, use_title, queries), join=True)
    elif todo or queries:
        _encode_chunks_worker(0, devices[:1], todo, str(corpus_path), str(parts_dir), spec, use_title, queries)
    _merge_parts(parts_dir, chunks, out_path)
    return end - start


def _part_path(parts_dir: Path, chunk: tuple[int, int]) -> Path:
    return parts_dir / f"rows-{chunk[0]:010d}-{chunk[1]:010d}.parquet"


def _encode_chunks_worker(rank: int, devices: list[str], todo: list, corpus_path: str, parts_dir: str,
                          spec: EncoderSpec, use_title: bool, queries: QueriesTask | None = None) -> None:
    """One process per device: one model load, then its chunks in a three-stage pipeline.

    A reader thread reads and tokenises the next chunk (pinned batch tensors) while the GPU encodes
    this one; a writer thread saves each finished chunk (atomically: a part is whole or absent) while
    the GPU goes on. A failure stops the loop; chunks already encoded are still written on the way out.
    """
    from concurrent.futures import ThreadPoolExecutor

    encoder = Encoder(spec, devices[rank])  # the one model load of this process
    if queries is not None and rank == 0:
        count = _encode_queries_with(encoder, queries.queries_path, queries.out_path, queries.query_sets)
        log.info("encoded %d queries", count)
    mine = todo[rank::len(devices)]

    def read(chunk):
        rows = read_rows(corpus_path, *chunk).to_pydict()
        texts = [document_text(t, x, use_title) for t, x in zip(rows["title"], rows["text"])]
        return rows["id"], encoder.prepare("passage", texts)

    def write(chunk, ids, vectors):
        write_embeddings(_part_path(Path(parts_dir), chunk), ids, vectors)

    with ThreadPoolExecutor(1, thread_name_prefix="reader") as reader, \
            ThreadPoolExecutor(1, thread_name_prefix="writer") as writer:
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
