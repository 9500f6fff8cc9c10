"""Encoder families: the ONE table of backbone architectures the study can use, and what each decides.

A family says how its backbone is loaded, which input format it reads in each setting, how it
pools, which special tokens its tokenizer adds, where its LoRA adapters go and where its position
limit is written. The schema's ``architecture`` enum is this table's keys (a test keeps them
equal); everything else (loader, formatters, pooling, LoRA, tiny builds) reads :data:`FAMILIES`.

=====================  ========  ============================  ===============  =========
family                 kind      supervised input              pooling          zero-shot
=====================  ========  ============================  ===============  =========
qwen2 (Qwen1.5/2/2.5)  decoder   ``Query: text</s>``           last (the EOS)   PromptReps
qwen3, llama, mistral  decoder   (BOS first where the          last             PromptReps
gemma, gemma2, phi,              tokenizer adds one)
phi3, qwen2_5_vl
bert                   encoder   ``[CLS] text [SEP]``          cls or mean      no
t5 (encoder stack)     encoder   ``text </s>``                 mean             no
sentence_transformers  embedder  its prompt + text, its        as its files     yes (no
                                 tokenizer's special tokens    declare          prompt)
=====================  ========  ============================  ===============  =========

Decoders pool the last token: the EOS of the supervised format, the closing quote of PromptReps.
Raw encoders (BERT, T5) are supervised only: zero-shot PromptReps needs a chat LM. A
sentence-transformers model is already a trained embedding model: a zero-shot reference row,
used exactly as its files say (modules.json, 1_Pooling/config.json, config_sentence_transformers.json).
Prefix caching applies to decoders only.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # torch stays out of the DAG build (study.py imports this module)
    import torch

# LoRA targets are written with Qwen's (= Llama's) projection names; each family maps them onto its modules.
PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
SAME_NAMES = {name: name for name in PROJECTIONS}
POSITION_KEYS = ("max_position_embeddings", "n_positions")


@dataclass(frozen=True)
class Family:
    kind: str  # decoder | encoder | sentence_transformers
    model_type: str  # transformers' model_type (config.json) of the family's checkpoints
    config_class: str  # transformers config class the tiny builds start from
    poolings: tuple[str, ...]  # the first is the default; empty: declared by the model's own files
    zero_shot: bool
    # Qwen-style projection name -> this family's module name (a regex piece matched at the name's end).
    lora_names: dict[str, str] = field(default_factory=lambda: SAME_NAMES)
    position_keys: tuple[str, ...] = POSITION_KEYS  # empty: relative positions, no limit (T5)
    model_class: str = "AutoModel"  # the transformers class that loads the retrieval body
    language_model: bool = False  # the text path is the checkpoint's ``language_model`` (Qwen2.5-VL)
    sdpa: bool = True  # False: PyTorch SDPA unsupported (Gemma 2's logit soft-capping): eager attention instead

    @property
    def bidirectional(self) -> bool:
        return self.kind != "decoder"


def _decoder(model_type: str, config_class: str, lora_names: dict[str, str] = SAME_NAMES, **kw) -> Family:
    return Family("decoder", model_type, config_class, ("last",), True, lora_names, **kw)


BERT_LORA = {
    "q_proj": r"attention\.self\.query",
    "k_proj": r"attention\.self\.key",
    "v_proj": r"attention\.self\.value",
    "o_proj": r"attention\.output\.dense",
    "gate_proj": r"intermediate\.dense",
    "up_proj": r"intermediate\.dense",
    "down_proj": r"\d+\.output\.dense",
}

FAMILIES = {
    "qwen2": _decoder("qwen2", "Qwen2Config"),
    "qwen3": _decoder("qwen3", "Qwen3Config"),
    "llama": _decoder("llama", "LlamaConfig"),
    "mistral": _decoder("mistral", "MistralConfig"),
    "gemma": _decoder("gemma", "GemmaConfig"),
    "gemma2": _decoder("gemma2", "Gemma2Config", sdpa=False),
    # Phi-1.5/2: q/k/v, ``dense`` out, ``fc1``/``fc2`` MLP (its one input projection serves gate and up).
    "phi": _decoder(
        "phi",
        "PhiConfig",
        {
            "q_proj": r"self_attn\.q_proj",
            "k_proj": r"self_attn\.k_proj",
            "v_proj": r"self_attn\.v_proj",
            "o_proj": r"self_attn\.dense",
            "gate_proj": r"mlp\.fc1",
            "up_proj": r"mlp\.fc1",
            "down_proj": r"mlp\.fc2",
        },
    ),
    # Phi-3: one fused qkv and one fused gate_up projection.
    "phi3": _decoder(
        "phi3",
        "Phi3Config",
        {
            "q_proj": r"qkv_proj",
            "k_proj": r"qkv_proj",
            "v_proj": r"qkv_proj",
            "o_proj": r"o_proj",
            "gate_proj": r"gate_up_proj",
            "up_proj": r"gate_up_proj",
            "down_proj": r"down_proj",
        },
    ),
    "qwen2_5_vl": _decoder("qwen2_5_vl", "Qwen2_5_VLConfig", language_model=True),
    "bert": Family("encoder", "bert", "BertConfig", ("cls", "mean"), False, BERT_LORA),
    # T5: the encoder stack only; relative positions (no limit); v1.1's gated MLP has wi_0 / wi_1.
    "t5": Family(
        "encoder",
        "t5",
        "T5Config",
        ("mean",),
        False,
        {
            "q_proj": r"SelfAttention\.q",
            "k_proj": r"SelfAttention\.k",
            "v_proj": r"SelfAttention\.v",
            "o_proj": r"SelfAttention\.o",
            "gate_proj": r"DenseReluDense\.wi(_0)?",
            "up_proj": r"DenseReluDense\.wi(_1)?",
            "down_proj": r"DenseReluDense\.wo",
        },
        position_keys=(),
        model_class="T5EncoderModel",
    ),
    # Its transformer's own family decides LoRA names and positions (read from the folder).
    "sentence_transformers": Family("sentence_transformers", "", "", (), True, {}),
}


class UnknownFamilyError(ValueError):
    """An ``architecture`` that is not in the family table."""


def family(architecture: str) -> Family:
    if architecture not in FAMILIES:
        raise UnknownFamilyError(
            f"unknown architecture {architecture!r} (known: {', '.join(FAMILIES)}); a new family is one "
            "entry of llm_retrieval.encoders.FAMILIES (docs/backbones.md, 'Adding a backbone')"
        )
    return FAMILIES[architecture]


def family_of_model_type(model_type: str) -> str:
    """The family whose checkpoints carry this config.json ``model_type``."""
    for name, fam in FAMILIES.items():
        if fam.model_type == model_type:
            return name
    raise UnknownFamilyError(f"model_type {model_type!r} belongs to no family (known: {', '.join(FAMILIES)})")


# --- sentence-transformers folders ---------------------------------------------------------------

ST_POOLINGS = {"pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_lasttoken": "last"}


class SentenceTransformersError(ValueError):
    """A sentence-transformers folder this project cannot use as its authors meant."""


@cache
def sentence_transformers_config(path: str) -> dict:
    """What a sentence-transformers folder declares: its transformer's subfolder, pooling,
    normalisation, query/passage prompts and sequence limit (read once per folder)."""
    root = Path(path)
    modules_file = root / "modules.json"
    if not modules_file.is_file():
        raise SentenceTransformersError(f"{root}: no modules.json (not a sentence-transformers folder)")
    modules = json.loads(modules_file.read_text(encoding="utf-8"))
    kinds = {m["type"].rsplit(".", 1)[-1]: m for m in modules}
    unknown = sorted(set(kinds) - {"Transformer", "Pooling", "Normalize"})
    if unknown or "Transformer" not in kinds or "Pooling" not in kinds:
        raise SentenceTransformersError(
            f"{modules_file}: modules {sorted(kinds)}; supported: Transformer, Pooling, optional Normalize"
        )
    pooling_file = root / kinds["Pooling"]["path"] / "config.json"
    pooling_cfg = json.loads(pooling_file.read_text(encoding="utf-8"))
    chosen = [ST_POOLINGS.get(key, key) for key, on in pooling_cfg.items() if key.startswith("pooling_mode") and on]
    if len(chosen) != 1 or chosen[0] not in ST_POOLINGS.values():
        raise SentenceTransformersError(f"{pooling_file}: pooling {chosen}; supported: one of cls, mean, lasttoken")
    transformer = root / kinds["Transformer"]["path"]
    st_file, bert_file = root / "config_sentence_transformers.json", transformer / "sentence_bert_config.json"
    st_cfg = json.loads(st_file.read_text(encoding="utf-8")) if st_file.is_file() else {}
    bert_cfg = json.loads(bert_file.read_text(encoding="utf-8")) if bert_file.is_file() else {}
    prompts = st_cfg.get("prompts") or {}
    passage = next((prompts[k] for k in ("document", "passage", "corpus") if k in prompts), "")
    if pooling_cfg.get("include_prompt") is False and (prompts.get("query") or passage):
        raise SentenceTransformersError(f"{pooling_file}: include_prompt false (prompt tokens left out of pooling)")
    model_type = json.loads((transformer / "config.json").read_text(encoding="utf-8"))["model_type"]
    return {
        "transformer_path": str(transformer),
        "model_type": model_type,
        "pooling": chosen[0],
        "normalize": "Normalize" in kinds,
        "prompts": {"query": prompts.get("query", ""), "passage": passage},
        "max_seq_length": bert_cfg.get("max_seq_length"),
        "do_lower_case": bool(bert_cfg.get("do_lower_case")),
    }


def inner_family(architecture: str, path: str | None) -> str:
    """The family whose modules and positions the loaded model has (a sentence-transformers model's
    transformer, read from its folder)."""
    if architecture != "sentence_transformers":
        return architecture
    return family_of_model_type(sentence_transformers_config(str(path))["model_type"])


# --- pooling -------------------------------------------------------------------------------------


def pooling_of(backbone: dict) -> str:
    """The backbone's pooling: a sentence-transformers folder's own, else its config/record
    ``pooling``, else its family's default."""
    if backbone["architecture"] == "sentence_transformers":
        return sentence_transformers_config(str(backbone["path"]))["pooling"]
    return backbone.get("pooling") or family(backbone["architecture"]).poolings[0]


def normalizes(backbone: dict, configured: bool) -> bool:
    """Unit-length vectors: as a sentence-transformers folder declares (a Normalize module), else the config."""
    if backbone["architecture"] == "sentence_transformers":
        return sentence_transformers_config(str(backbone["path"]))["normalize"]
    return configured


def pool(hidden: torch.Tensor, mask: torch.Tensor, pooling: str) -> torch.Tensor:
    if pooling == "cls":
        return hidden[:, 0]
    if pooling == "mean":
        weights = mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * weights).sum(1) / weights.sum(1).clamp(min=1)
    from .modeling import last_token_pool

    return last_token_pool(hidden, mask)


def embedding(hidden: torch.Tensor, mask: torch.Tensor, pooling: str, normalize: bool) -> torch.Tensor:
    """The one embedding of a batch, for encoding and training alike: pooled in float32, then
    L2-normalised when asked (computed in float32: bf16 states are cast before the norm)."""
    import torch.nn.functional as F

    pooled = pool(hidden, mask, pooling).float()
    return F.normalize(pooled, dim=-1) if normalize else pooled


# --- LoRA ------------------------------------------------------------------------------------------


class LoraTargetError(ValueError):
    """A configured LoRA target with no counterpart in the backbone's family."""


def lora_targets(architecture: str, configured: Sequence[str], path: str | None = None) -> list[str] | str:
    """LoRA target modules for this architecture, from the config's (Qwen-named) list."""
    name = inner_family(architecture, path)
    names = family(name).lora_names
    unknown = [m for m in configured if m not in names]
    if unknown:
        raise LoraTargetError(
            f"training.lora.target_modules: {unknown} have no counterpart in {name} (known: {', '.join(names)})"
        )
    if names is SAME_NAMES:
        return list(configured)
    # One regex over the full module names (PEFT matches a string target with re.fullmatch).
    return r".*\.(" + "|".join(sorted({names[m] for m in configured})) + r")$"


# --- position limits -------------------------------------------------------------------------------


class PositionLimitError(ValueError):
    """An input length beyond what the backbone's positions allow."""


def position_limit(config: dict, architecture: str) -> int | None:
    """Longest input a model's config.json allows (``max_position_embeddings`` or ``n_positions``);
    None for relative positions (T5)."""
    config = config.get("text_config") or config
    keys = family(architecture).position_keys
    return next((int(config[k]) for k in keys if config.get(k)), None)


def folder_position_limit(backbone: dict) -> int | None:
    """The position limit of a downloaded or built model folder (its config.json), and a
    sentence-transformers model's ``max_seq_length`` where lower."""
    architecture, path = backbone["architecture"], backbone["path"]
    inner = inner_family(architecture, path)
    folder = Path(sentence_transformers_config(path)["transformer_path"]) if inner != architecture else Path(path)
    config_file = folder / "config.json"
    if not config_file.is_file():
        return None
    limit = position_limit(json.loads(config_file.read_text(encoding="utf-8")), inner)
    if inner != architecture and sentence_transformers_config(path)["max_seq_length"]:
        cap = sentence_transformers_config(path)["max_seq_length"]
        limit = cap if limit is None else min(limit, cap)
    return limit


def check_position_limit(backbone: dict, longest: dict[str, int], what: str) -> None:
    """Before any GPU work: every sequence the format can make fits the model's positions."""
    limit = folder_position_limit(backbone)
    for kind, length in longest.items():
        if limit is not None and length > limit:
            raise PositionLimitError(
                f"{what}: the longest {kind} sequence is {length} tokens, beyond the position limit of "
                f"{backbone['path']} ({limit}, its config.json); lower the {kind} length"
            )


# --- the config's cross-checks (DAG build) ----------------------------------------------------------


def check(config: dict, error=ValueError) -> None:
    for name, spec in config["backbones"].items():
        fam = family(spec["architecture"])
        if spec.get("pooling") and not fam.poolings:
            raise error(
                f"backbones.{name}.pooling: a {spec['architecture']} model pools as its own files say "
                "(1_Pooling/config.json); remove the key"
            )
        if spec.get("pooling") and spec["pooling"] not in fam.poolings:
            raise error(
                f"backbones.{name}.pooling: {spec['pooling']!r} is not a pooling of architecture "
                f"{spec['architecture']!r} (it has: {', '.join(fam.poolings)})"
            )
    settings = config.get("settings") or {}
    training = config.get("training") or {}
    for name in (settings.get("supervised") or {}).get("backbones", []):
        _check_supervised(name, config["backbones"][name], training, error)
    for name in (settings.get("zeroshot") or {}).get("backbones", []):
        if not family(config["backbones"][name]["architecture"]).zero_shot:
            raise error(
                f"settings.zeroshot.backbones: {name!r} is a {config['backbones'][name]['architecture']} "
                "encoder; zero-shot PromptReps needs a chat LM (list it under settings.supervised only)"
            )


def _check_supervised(name: str, spec: dict, training: dict, error) -> None:
    from .axes import position_limit as configured_limit

    limit = configured_limit(spec)
    for kind, length in (training.get("max_length") or {}).items():
        if limit is not None and length > limit:
            raise error(
                f"training.max_length.{kind}: {length} exceeds the position limit of backbone {name!r}, {limit} tokens"
            )
    lora = training.get("lora")
    fam = family(spec["architecture"])
    if lora and fam.lora_names:  # a sentence-transformers model's modules are known after download
        unknown = [m for m in lora["target_modules"] if m not in fam.lora_names]
        if unknown:
            raise error(
                f"training.lora.target_modules: {unknown} have no counterpart in backbone {name!r} "
                f"({spec['architecture']}; known: {', '.join(fam.lora_names)})"
            )
