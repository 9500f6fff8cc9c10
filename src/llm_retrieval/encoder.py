"""The encoder: texts to vectors on one device (formatting, token-budget batches, forward, pooling,
and the shared-prefix key/value cache of the zero-shot prompt).

The shard job that feeds it (Parquet reads, resume, one process per GPU) is :mod:`.encode`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from . import encoders
from .memory_guard import memory_guard
from .modeling import load_text_model, load_tokenizer
from .prompts import Formatter, InstructedFormatters, formatter_and_budgets, formatter_for, instruction_of_query
from .study import ConfigError


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


# Where a setting's encoding section carries each kind's instruction(s) (axes.encoding_for).
INSTRUCTION_KEYS = {"query": "instruction", "passage": "passage_instruction"}


@dataclass(frozen=True)
class EncoderSpec:
    """Everything a worker process needs to rebuild the encoder (picklable across spawn)."""

    backbone: dict  # backbone.json record: path, revision, architecture, strip_think
    encoding: dict  # config `encoding` section
    adapter_dir: str | None = None  # supervised setting: trained LoRA adapter
    # Supervised format (``Query: ``/``Passage: `` + EOS) with whole-sequence limits, as in
    # training (config `training.max_length`); None: the zero-shot PromptReps prompts.
    max_length: dict | None = None

    @classmethod
    def for_job(cls, backbone_record: str, encoding: dict, adapters: Sequence[str], max_length: dict | None):
        """The spec of an encode job: its backbone.json, its setting's encoding, its adapter (if any) and limits."""
        backbone = json.loads(Path(backbone_record).read_text(encoding="utf-8"))
        return cls(backbone, encoding, adapters[0] if adapters else None, max_length)

    def instructions(self, kind: str = "query") -> tuple[str, ...]:
        """The instruction axis: the collection's task sentence, or a named set's sentences (one per query; the
        set's passage side: one per document)."""
        instruction = self.encoding.get(INSTRUCTION_KEYS[kind])
        return () if not instruction else (instruction,) if isinstance(instruction, str) else tuple(instruction)

    def formatter_for(self, tokenizer, instruction: str | None, passage_instruction: str | None = None) -> Formatter:
        """The setting's format with one query instruction and one passage instruction (or none)."""
        supervised, prompts = self.max_length is not None, self.encoding.get("prompts")
        return formatter_for(tokenizer, self.backbone, supervised, prompts, instruction, passage_instruction)

    def formatter_and_budgets(self, tokenizer) -> tuple[Formatter, dict[str, int]]:
        """The formatter (with the one instruction of each kind, if one) and each kind's text budget."""
        single = {kind: self.instructions(kind) for kind in INSTRUCTION_KEYS}
        single = {kind: told[0] if len(told) == 1 else None for kind, told in single.items()}
        return formatter_and_budgets(
            tokenizer, self.backbone, self.max_length, self.encoding, single["query"], single["passage"]
        )


class Encoder:
    def __init__(self, spec: EncoderSpec, device: str):
        self.spec, self.device = spec, device
        self.tokenizer = load_tokenizer(spec.backbone["path"], spec.backbone.get("revision"))
        self.formatter, self.text_budget = spec.formatter_and_budgets(self.tokenizer)
        self.instructed = InstructedFormatters(
            lambda query, passage: spec.formatter_for(self.tokenizer, query, passage)
        )
        dtype = spec.encoding["dtype"] if device.startswith("cuda") else "float32"  # CPUs lack fast bf16 matmul
        self.check_budget()
        self.model = load_text_model(
            spec.backbone["path"],
            spec.backbone["architecture"],
            dtype,
            device,
            spec.backbone.get("revision"),
            spec.adapter_dir,
        )

    def longest_sequence(self, kind: str) -> int:
        formats = [self.instructed.get(i, kind) for i in self.spec.instructions(kind)]
        return max(
            len(prefix) + self.text_budget[kind] + len(suffix)
            for prefix, suffix in (f.pieces[kind] for f in [self.formatter, *formats])
        )

    def check_budget(self) -> None:
        """Every text must fit a batch alone, truncated as the format says: a smaller budget is a config error."""
        budget = self.spec.encoding["batch_tokens"]
        for kind in self.text_budget:
            longest = self.longest_sequence(kind)
            if longest > budget:
                raise BatchBudgetError(
                    f"encoding.batch_tokens: {budget} cannot hold the longest {kind} sequence of {longest} tokens "
                    f"({self.text_budget[kind]} text tokens + {longest - self.text_budget[kind]} template tokens "
                    f"of {self.spec.backbone.get('path')}); set encoding.batch_tokens to at least {longest}"
                )
        encoders.check_position_limit(
            self.spec.backbone, {kind: self.longest_sequence(kind) for kind in self.text_budget}, "encoding"
        )

    # --- preparing (CPU, may run in a background thread) -------------------------------

    def shared_prefix(self, kind: str) -> list[int]:
        """Token ids every text of ``kind`` starts with, computed once when encoding.share_prefix is on.

        The zero-shot (PromptReps) format of a decoder only: every text sits after the same chat-template
        prefix, and causal attention leaves the prefix's keys/values the same whatever follows. The
        switch comes from the schema-validated `encoding` section (its default lives in the schema only).
        """
        bidirectional = encoders.family(self.spec.backbone["architecture"]).bidirectional
        if self.spec.max_length is not None or bidirectional or not self.spec.encoding["share_prefix"]:
            return []
        if len(self.spec.instructions(kind)) > 1:
            return []  # texts of a named set start with different instructions
        return list(self.formatter.pieces[kind][0])

    def prepare(self, kind: str, texts: Sequence[str]) -> Prepared:
        """Tokenise and plan the batches (CPU work: runs in the reader thread, beside the GPU)."""
        return self.prepare_ids(kind, self.formatter.token_ids(kind, texts, self.text_budget[kind]))

    def prepare_queries(self, texts: Sequence[str], query_ids: Sequence[str]) -> Prepared:
        """Queries; with a named instruction set each gets the instruction its id chooses."""
        return self.prepare_identified("query", texts, query_ids)

    def prepare_identified(self, kind: str, texts: Sequence[str], ids: Sequence[str]) -> Prepared:
        """Texts with their ids; with several instructions of this kind (a named set) each text gets the one its
        id chooses."""
        instructions = self.spec.instructions(kind)
        if len(instructions) <= 1:
            return self.prepare(kind, texts)
        chosen = [instruction_of_query(instructions, text_id) for text_id in ids]
        return self.prepare_ids(kind, self.instructed.token_ids(kind, texts, chosen, self.text_budget[kind]))

    def prepare_ids(self, kind: str, ids: list[list[int]], batches: list[list[int]] | None = None) -> Prepared:
        """Batches of already formatted token ids (every one starting with shared_prefix(kind));
        ``batches`` (row indices) replaces the token-budget batching (benchmarks compare the two)."""
        if batches is None:
            batches = token_batches([len(x) for x in ids], self.spec.encoding["batch_tokens"])
        prefix = self.shared_prefix(kind)
        rest = [seq[len(prefix) :] for seq in ids] if prefix else ids
        pad = self.tokenizer.pad_token_id
        pin = torch.device(self.device).type == "cuda"
        tensors = []
        for rows in batches:
            width = max(len(rest[i]) for i in rows)
            input_ids = torch.full((len(rows), width), pad, dtype=torch.long)
            mask = torch.zeros((len(rows), width), dtype=torch.long)
            for r, i in enumerate(rows):
                input_ids[r, : len(rest[i])] = torch.tensor(rest[i])
                mask[r, : len(rest[i])] = 1
            tensors.append((input_ids.pin_memory(), mask.pin_memory()) if pin else (input_ids, mask))
        real = sum(map(len, ids))
        padded = sum(len(rows) * max(len(ids[i]) for i in rows) for rows in batches)
        return Prepared(
            kind,
            len(ids),
            batches,
            tensors,
            prefix,
            real,
            padded,
            computed=sum(t.numel() for t, _ in tensors) + (len(prefix) if batches else 0),
        )

    # --- running (GPU) ------------------------------------------------------------------

    @torch.inference_mode()
    def encode(self, kind: str, texts: Sequence[str], desc: str = "") -> np.ndarray:
        return self.run(self.prepare(kind, texts), desc)

    @torch.inference_mode()
    def run(self, prepared: Prepared, desc: str = "") -> np.ndarray:
        """Forward every batch; GPU->host copies go to pinned memory without blocking the next batch."""
        if not prepared.batches:
            return np.empty((0, 0), dtype=np.float32)
        cache = self._prefix_cache(prepared.prefix) if prepared.prefix else None
        pending = []
        for rows, (input_ids, mask) in tqdm(
            list(zip(prepared.batches, prepared.tensors)),
            desc=desc or f"encode {prepared.kind}",
            unit="batch",
            mininterval=5,
            disable=None,
        ):
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
        with memory_guard(
            f"a batch of {input_ids.shape[0]} texts x {input_ids.shape[1]} tokens",
            "lower encoding.batch_tokens, or the input length (encoding.max_text_tokens, "
            "training.max_length for supervised, settings.<setting>.axes.passage_tokens)",
        ):
            hidden = self._hidden(input_ids, mask, prefix_cache)
        return encoders.embedding(
            hidden,
            mask,
            encoders.pooling_of(self.spec.backbone),
            encoders.normalizes(self.spec.backbone, self.spec.encoding["normalize"]),
        )

    def _hidden(self, input_ids: torch.Tensor, mask: torch.Tensor, prefix_cache=None) -> torch.Tensor:
        if prefix_cache is None:
            # No KV cache: nothing generates after this pass (the model's config would keep one per batch).
            return self.model(input_ids=input_ids, attention_mask=mask, use_cache=False).last_hidden_state
        from transformers import DynamicCache

        rows, width = input_ids.shape
        start = prefix_cache[0][0].shape[-2]
        # Expanded views, no copy: the model concatenates each batch's own keys after them.
        past = DynamicCache(
            ddp_cache_data=[(k.expand(rows, -1, -1, -1), v.expand(rows, -1, -1, -1)) for k, v in prefix_cache]
        )
        full_mask = torch.cat([mask.new_ones(rows, start), mask], dim=1)
        positions = torch.arange(start, start + width, device=input_ids.device).expand(rows, -1)
        if encoders.family(self.spec.backbone["architecture"]).language_model:
            # Multimodal rotary positions (temporal, height, width): for text all three are the 1-D position.
            positions = positions[None].expand(3, -1, -1)
        return self.model(
            input_ids=input_ids, attention_mask=full_mask, position_ids=positions, past_key_values=past, use_cache=False
        ).last_hidden_state  # past still read


@dataclass
class Prepared:
    """One set of texts tokenised and cut into batches, ready for the GPU."""

    kind: str
    count: int
    batches: list
    tensors: list
    prefix: list
    real_tokens: int  # tokens of the formatted texts
    padded_tokens: int  # rows x longest, summed over batches, computing every token
    computed: int  # tokens the forward passes compute (padding included, shared prefix once)
