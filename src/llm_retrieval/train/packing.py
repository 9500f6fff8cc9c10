"""Padding-free micro-steps: every sequence of a micro-step in one row.

The rank's queries and passages are concatenated into a single row of ``T`` real
tokens (no pads); each sequence gets its own position ids (0, 1, ...), and attention
stays inside each sequence (causal there). Hugging Face's Qwen2 code reads the
sequence boundaries from the position ids when no 2-D attention mask is given and no
cache is used (``use_cache=False``):

- flash-attention 2/3 (when installed): its varlen kernel, fed the ``cu_seq_lens``
  computed here (so no per-layer recomputation or host sync);
- SDPA / eager: a block-diagonal mask, causal within each sequence
  (``transformers.masking_utils``' packed-sequence mask).

Computed tokens = real tokens, against ``G x longest passage`` per group when padded.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

# Attention implementations whose Hugging Face mask/kernel path honours packed position ids.
PACKED_ATTENTION = ("flash_attention_2", "flash_attention_3", "sdpa", "eager", "flex_attention")
FLASH = ("flash_attention_2", "flash_attention_3")


class PackingUnsupported(RuntimeError):
    """``training.packing`` is on but the model's attention path cannot keep packed sequences apart."""


class PackedRowTooLong(ValueError):
    """A micro-step's packed row exceeds ``training.max_packed_tokens``."""


@dataclass
class PackedBatch:
    """One row holding ``len(lengths)`` sequences: queries first, then their passages."""

    input_ids: torch.Tensor  # [1, T]
    position_ids: torch.Tensor  # [1, T], restarting at 0 for each sequence
    cu_seqlens: torch.Tensor  # [n + 1] int32, sequence boundaries (flash-attention varlen layout)
    last: torch.Tensor  # [n] index of each sequence's last token (its EOS)
    max_length: int
    n_queries: int

    @property
    def real_tokens(self) -> int:
        return self.input_ids.size(1)

    def to(self, device) -> PackedBatch:
        return PackedBatch(
            self.input_ids.to(device),
            self.position_ids.to(device),
            self.cu_seqlens.to(device),
            self.last.to(device),
            self.max_length,
            self.n_queries,
        )


def pack(
    queries: Sequence[Sequence[int]],
    passages: Sequence[Sequence[int]],
    max_tokens: int | None = None,
    where: str = "micro-step",
) -> PackedBatch:
    sequences = [*queries, *passages]
    lengths = [len(s) for s in sequences]
    total = sum(lengths)
    if max_tokens is not None and total > max_tokens:
        raise PackedRowTooLong(
            f"{where}: {len(queries)} queries and {len(passages)} passages pack into {total} tokens, more than "
            f"training.max_packed_tokens={max_tokens}; lower training.per_device_batch (raising "
            f"gradient_accumulation to keep global_batch) or raise max_packed_tokens if memory allows"
        )
    ids = torch.tensor([t for s in sequences for t in s], dtype=torch.long)
    positions = torch.cat([torch.arange(n) for n in lengths])
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int32)
    cu[1:] = torch.cumsum(torch.tensor(lengths), 0)
    return PackedBatch(ids[None], positions[None], cu, cu[1:].long() - 1, max(lengths), len(queries))


def check_attention(implementation: str) -> str:
    """The attention path packing will use, or :class:`PackingUnsupported` at start."""
    if implementation not in PACKED_ATTENTION:
        raise PackingUnsupported(
            f"training.packing is on but the model runs attention {implementation!r}, which has no packed-sequence "
            f"path (supported: {', '.join(PACKED_ATTENTION)}); set training.packing: false or load the model with "
            f"sdpa / flash_attention_2"
        )
    try:
        from transformers.masking_utils import find_packed_sequence_indices  # noqa: F401
    except ImportError as e:
        raise PackingUnsupported(
            "training.packing needs transformers' packed-sequence masks "
            "(transformers >= 4.54); set training.packing: false or upgrade"
        ) from e
    return "flash-attention varlen" if implementation in FLASH else f"{implementation} with a block-diagonal mask"


def padded_tokens(query_lengths: Sequence[int], passage_lengths: Sequence[int], one_pass: bool = False) -> int:
    """Tokens computed when padded: queries to the longest query and passages to the longest passage
    (two passes), or every sequence to the longest of all (one padded pass)."""
    if one_pass:
        return (len(query_lengths) + len(passage_lengths)) * max(*query_lengths, *passage_lengths)
    return len(query_lengths) * max(query_lengths) + len(passage_lengths) * max(passage_lengths)
