"""Encoder families: what each backbone architecture reads, how it pools, where its LoRA goes.

- Decoders (``qwen2``, ``qwen2_5_vl``): last-token pooling (the EOS of the supervised
  format, the closing quote of PromptReps), zero-shot and supervised.
- BERT-style encoders (``bert``): ``[CLS] text [SEP]``, CLS or mean pooling, LoRA on
  their own module names; supervised only, since zero-shot PromptReps needs a chat LM.
  Prefix caching does not apply to bidirectional models.

A pooling the architecture does not have, or a BERT backbone in the zero-shot setting,
is a config error naming the key.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Sequence

if TYPE_CHECKING:  # torch stays out of the DAG build (study.py imports this module)
    import torch


@dataclass(frozen=True)
class Family:
    bidirectional: bool
    poolings: tuple[str, ...]  # the first is the default
    zero_shot: bool
    # LoRA targets: the config names Qwen's projections; an encoder maps them onto its own modules.
    lora_names: dict[str, str] | None = None


FAMILIES = {
    "qwen2": Family(False, ("last",), True),
    "qwen2_5_vl": Family(False, ("last",), True),
    "bert": Family(True, ("cls", "mean"), False, {
        "q_proj": "attention.self.query", "k_proj": "attention.self.key", "v_proj": "attention.self.value",
        "o_proj": "attention.output.dense", "gate_proj": "intermediate.dense", "up_proj": "intermediate.dense",
        "down_proj": r"\d+\.output\.dense"}),
}


def family(architecture: str) -> Family:
    if architecture not in FAMILIES:
        raise ValueError(f"unknown architecture {architecture!r} (known: {', '.join(FAMILIES)})")
    return FAMILIES[architecture]


def pooling_of(backbone: dict) -> str:
    """The backbone's pooling: its config/record ``pooling``, else its family's default."""
    return backbone.get("pooling") or family(backbone["architecture"]).poolings[0]


def check(config: dict, error=ValueError) -> None:
    for name, spec in config["backbones"].items():
        fam = family(spec["architecture"])
        if spec.get("pooling") and spec["pooling"] not in fam.poolings:
            raise error(f"backbones.{name}.pooling: {spec['pooling']!r} is not a pooling of architecture "
                        f"{spec['architecture']!r} (it has: {', '.join(fam.poolings)})")
    supervised = (config.get("settings") or {}).get("supervised")
    max_length = (config.get("training") or {}).get("max_length") or {}
    for name in (supervised or {}).get("backbones", []):
        from .axes import position_limit

        limit = position_limit(config["backbones"][name])
        for kind, length in max_length.items():
            if limit is not None and length > limit:
                raise error(f"training.max_length.{kind}: {length} exceeds the position limit of backbone {name!r}, "
                            f"{limit} tokens")
    zero_shot = (config.get("settings") or {}).get("zeroshot")
    for name in (zero_shot or {}).get("backbones", []):
        if not family(config["backbones"][name]["architecture"]).zero_shot:
            raise error(f"settings.zeroshot.backbones: {name!r} is a {config['backbones'][name]['architecture']} "
                        "encoder; zero-shot PromptReps needs a chat LM (list it under settings.supervised only)")


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    from .modeling import last_token_pool

    return last_token_pool(hidden, mask)


def lora_targets(architecture: str, configured: Sequence[str]) -> list[str] | str:
    """LoRA target modules for this architecture, from the config's (Qwen-named) list."""
    names = family(architecture).lora_names
    if names is None:
        return list(configured)
    unknown = [m for m in configured if m not in names]
    if unknown:
        raise ValueError(f"training.lora.target_modules: {unknown} have no counterpart in {architecture} "
                         f"(known: {', '.join(names)})")
    # One regex over the full module names (PEFT matches a string target with re.fullmatch).
    return r".*(" + "|".join(sorted({names[m] for m in configured})) + r")$"


class ClsSepFormatter:
    """``[CLS] text [SEP]`` for queries and passages (no prefix, nothing pooled at the end)."""

    def __init__(self, tokenizer):
        if tokenizer.cls_token_id is None or tokenizer.sep_token_id is None:
            raise ValueError("the tokenizer has no [CLS]/[SEP] tokens")
        self.tokenizer = tokenizer
        self.pieces = {kind: ([tokenizer.cls_token_id], [tokenizer.sep_token_id]) for kind in ("query", "passage")}

    def token_ids(self, kind: str, texts: Sequence[str], max_text_tokens: int) -> list[list[int]]:
        prefix, suffix = self.pieces[kind]
        bodies = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                                max_length=max_text_tokens)["input_ids"]
        return [prefix + body + suffix for body in bodies]

    def text_budget(self, kind: str, max_length: int) -> int:
        if max_length < 3:
            raise ValueError(f"max_length.{kind}={max_length} leaves no room for text between [CLS] and [SEP]")
        return max_length - 2


def supervised_formatter(tokenizer, architecture: str, instruction: str | None = None):
    from .prompts import PrefixEosFormatter

    if family(architecture).bidirectional:
        return ClsSepFormatter(tokenizer)
    return PrefixEosFormatter(tokenizer, instruction)


# --- a tiny BERT for the offline demo ---------------------------------------------------------

def build_tiny_bert(build: dict, texts, out_dir) -> dict:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, trainers
    from transformers import BertConfig, BertModel, PreTrainedTokenizerFast

    import torch

    from .atomic import atomic_path

    torch.manual_seed(build["seed"])
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.train_from_iterator(texts, trainers.WordPieceTrainer(vocab_size=build["vocab_size"], special_tokens=specials,
                                                             show_progress=False))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]",
                                   sep_token="[SEP]", mask_token="[MASK]")
    config = BertConfig(vocab_size=len(fast), hidden_size=build["hidden_size"], intermediate_size=build["intermediate_size"],
                        num_hidden_layers=build["num_hidden_layers"], num_attention_heads=build["num_attention_heads"],
                        max_position_embeddings=build.get("max_position_embeddings", 512),
                        pad_token_id=fast.pad_token_id)
    model = BertModel(config, add_pooling_layer=False)
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        fast.save_pretrained(tmp)
    return {"path": str(out_dir), "revision": None, "architecture": "bert", "built": build,
            "parameters": sum(p.numel() for p in model.parameters())}


# --- inputs too long for the memory ------------------------------------------------------------

class InputMemoryError(MemoryError):
    """A batch of long inputs ran out of (GPU or host) memory; says which setting to change."""


OOM_MARKERS = ("out of memory", "can't allocate memory", "not enough memory")


class memory_guard:
    """Turn an out-of-memory failure inside the block into :class:`InputMemoryError` with ``advice``."""

    def __init__(self, what: str, advice: str):
        self.what, self.advice = what, advice

    def __enter__(self):
        return self

    def __exit__(self, kind, err, tb):
        if err is None or isinstance(err, InputMemoryError):
            return False
        message = str(err).lower()
        if isinstance(err, MemoryError) or (isinstance(err, RuntimeError) and any(m in message for m in OOM_MARKERS)):
            raise InputMemoryError(f"{self.what} ran out of memory ({type(err).__name__}); {self.advice}") from err
        return False
