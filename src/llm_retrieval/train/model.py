"""The retriever being trained: the backbone with fresh LoRA adapters, its inputs (the same formatter
as encoding) and its pooled, normalised embeddings. Encoding after training is :mod:`llm_retrieval.encoder`
(it loads the exported adapter)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .. import encoders
from ..modeling import attention_implementation, load_text_model
from ..prompts import InstructedFormatters, document_text, formatter_and_budgets, formatter_for
from .packing import FLASH, PackedBatch, pack


class Batcher:
    """Token ids for queries (``Query: text<eos>``) and passages (``Passage: title text<eos>``).

    The formatter and budgets come from the one function the encoder uses for the supervised
    setting (``prompts.formatter_and_budgets``), so training and encoding see identical inputs
    for every family (``[CLS] text [SEP]`` for BERT, ``text </s>`` for T5, ...). ``max_length``
    bounds the whole sequence: the text is cut, never the prefix or the EOS that is pooled.
    """

    def __init__(self, tokenizer, max_length: dict[str, int], architecture: str = "qwen2", path: str | None = None):
        backbone = {"architecture": architecture, "path": path}
        self.tokenizer = tokenizer
        self.formatter, self.text_budget = formatter_and_budgets(tokenizer, backbone, max_length)
        if path is not None:  # before any GPU work: every sequence fits the model's positions
            encoders.check_position_limit(backbone, max_length, "training.max_length")
        # A text's instruction (its task's, drawn with the seed) in the family's format, as encoding does.
        self.instructed = InstructedFormatters(lambda q, p: formatter_for(tokenizer, backbone, True, None, q, p))

    def token_ids(self, kind: str, texts: Sequence[str], instructions: Sequence[str | None] | None = None):
        """Formatted ids, each text with its instruction (an instruction does not take from the text's budget)."""
        if instructions and any(instructions):
            return self.instructed.token_ids(kind, texts, instructions, self.text_budget[kind])
        return self.formatter.token_ids(kind, texts, self.text_budget[kind])

    def tensors(
        self, kind: str, texts: Sequence[str], instructions: Sequence[str | None] | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        ids = self.token_ids(kind, texts, instructions)
        width, pad = max(map(len, ids)), self.tokenizer.pad_token_id
        # Right padding: under causal attention the EOS never sees the pads.
        input_ids = torch.tensor([seq + [pad] * (width - len(seq)) for seq in ids])
        mask = torch.tensor([[1] * len(seq) + [0] * (width - len(seq)) for seq in ids])
        return input_ids, mask

    def packed(
        self,
        queries: Sequence[str],
        passages: Sequence[str],
        max_tokens: int | None = None,
        where: str = "micro-step",
        instructions: Sequence[str | None] | None = None,
        passage_instructions: Sequence[str | None] | None = None,
    ) -> PackedBatch:
        """Queries then passages in one padding-free row (see :mod:`.packing`)."""
        return pack(
            self.token_ids("query", queries, instructions),
            self.token_ids("passage", passages, passage_instructions),
            max_tokens,
            where,
        )

    def passage_texts(self, passages) -> list[str]:
        return [document_text(p.title, p.text, True) for p in passages]


class Retriever(nn.Module):
    """Unit-length EOS embeddings of queries and passages from one (LoRA-wrapped) backbone."""

    def __init__(self, backbone: nn.Module, multimodal_positions: bool = False, pooling: str = "last"):
        super().__init__()
        self.backbone, self.pooling = backbone, pooling
        # Qwen2.5-VL's language model takes [4, B, T] positions: text positions first (they
        # define the packed-sequence mask), then the three M-RoPE rows, equal for text.
        self.multimodal_positions = multimodal_positions

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return encoders.embedding(hidden, attention_mask, self.pooling, normalize=True)  # as the encoder pools

    def embed_packed(self, batch: PackedBatch) -> torch.Tensor:
        """Unit-length EOS embeddings of every sequence of a packed row."""
        positions = batch.position_ids
        if self.multimodal_positions:
            positions = positions.expand(4, *positions.shape)
        kwargs = {}
        if self.backbone.config._attn_implementation in FLASH:
            # Boundaries handed to the varlen kernel directly: no recomputation (and host sync) per layer.
            kwargs = {
                "cu_seq_lens_q": batch.cu_seqlens,
                "cu_seq_lens_k": batch.cu_seqlens,
                "max_length_q": batch.max_length,
                "max_length_k": batch.max_length,
            }
        # No attention mask and no cache: the model derives the per-sequence mask from the positions.
        hidden = self.backbone(
            input_ids=batch.input_ids, position_ids=positions, use_cache=False, **kwargs
        ).last_hidden_state
        return F.normalize(hidden[0, batch.last].float(), dim=-1)

    def forward(self, *inputs) -> tuple[torch.Tensor, torch.Tensor]:
        """Query and passage embeddings of one micro-step, from ONE forward pass.

        ``inputs`` is a :class:`PackedBatch` (padding-free) or the padded
        ``q_ids, q_mask, p_ids, p_mask``.
        """
        if len(inputs) == 1 and isinstance(inputs[0], PackedBatch):
            emb = self.embed_packed(inputs[0])
            return emb[: inputs[0].n_queries], emb[inputs[0].n_queries :]
        return self.forward_padded(*inputs)

    def forward_padded(self, q_ids, q_mask, p_ids, p_mask) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries and passages in ONE forward pass (right-padded to a common width).

        Under ZeRO-3 every pass all-gathers each layer's weights (and its backward
        again); one pass instead of two halves that traffic. Right padding under causal
        attention leaves each sequence's EOS state unchanged by the extra pads.
        """
        width = max(q_ids.size(1), p_ids.size(1))
        # The pads' id is irrelevant (masked, and after the EOS): 0 is valid in every vocabulary.
        ids = torch.cat([_pad_right(q_ids, width, 0), _pad_right(p_ids, width, 0)])
        mask = torch.cat([_pad_right(q_mask, width, 0), _pad_right(p_mask, width, 0)])
        emb = self.embed(ids, mask)
        return emb[: q_ids.size(0)], emb[q_ids.size(0) :]


def _pad_right(t: torch.Tensor, width: int, value: int) -> torch.Tensor:
    return F.pad(t, (0, width - t.size(1)), value=value) if t.size(1) < width else t


def trainable_retriever(
    backbone_path: str,
    architecture: str,
    lora: dict | None,
    dtype: str = "float32",
    gradient_checkpointing: bool = False,
    pooling: str | None = None,
    compute_device: str = "cpu",
) -> Retriever:
    """Backbone with fresh LoRA adapters (``lora``), or every weight trainable (``lora`` None: full
    fine-tuning), loaded on the CPU for DeepSpeed to place (under ZeRO-3 with ``HfDeepSpeedConfig``
    alive, loaded partitioned: no rank holds a full copy); a decoder's attention chosen for
    ``compute_device`` (flash-attention on GPU where installed)."""
    # An encoder (BERT) keeps its default attention: flash-attention is a decoder path here.
    decoder = not encoders.family(architecture).bidirectional
    backbone = load_text_model(
        backbone_path,
        architecture,
        dtype,
        "cpu",
        attention=attention_implementation(compute_device, dtype) if decoder else None,
    ).train()
    if gradient_checkpointing:
        # Non-reentrant checkpointing needs no input grads, which the frozen embeddings lack.
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    record = {"architecture": architecture, "path": backbone_path, "pooling": pooling}
    multimodal = encoders.family(architecture).language_model
    if lora is None:
        if multimodal:
            raise ValueError(
                "training.method full: the exported language model of qwen2_5_vl would not load as "
                "the VL checkpoint does; train it with LoRA"
            )
        backbone.requires_grad_(True)
        return Retriever(backbone, pooling=encoders.pooling_of(record))
    from peft import LoraConfig, get_peft_model

    config = LoraConfig(
        r=lora["rank"],
        lora_alpha=lora["alpha"],
        lora_dropout=lora["dropout"],
        target_modules=encoders.lora_targets(architecture, lora["target_modules"], backbone_path),
        bias="none",
    )
    return Retriever(
        get_peft_model(backbone, config), multimodal_positions=multimodal, pooling=encoders.pooling_of(record)
    )
