"""Loading backbones and pooling their hidden states: one path for 7B hub models and tiny demo ones."""

from __future__ import annotations

import logging
from pathlib import Path

import torch
import transformers
from torch import nn
from transformers import AutoModel, AutoTokenizer, PreTrainedTokenizerBase

from . import encoders
from .data.canonical import DataError

ADAPTER_FILES = ("adapter_model.safetensors", "adapter_config.json")
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
log = logging.getLogger(__name__)


def load_tokenizer(path: str, revision: str | None = None) -> PreTrainedTokenizerBase:
    tokenizer = AutoTokenizer.from_pretrained(path, revision=revision)
    # Right padding: with causal attention the last real token never sees the pads,
    # so pooling by the mask gives the same vector as an unpadded forward pass.
    tokenizer.padding_side = "right"
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


FLASH_DTYPES = ("bfloat16", "float16")  # flash-attn's kernels: half precision only


def attention_implementation(device: str | torch.device, dtype: str) -> str:
    """flash_attention_2 for a CUDA model in bf16/fp16 where flash-attn is installed, else PyTorch SDPA.

    flash-attn has no CPU kernel and refuses float32 (``encoding.dtype: float32``, the GPU tests).
    """
    if torch.device(device).type != "cuda" or dtype not in FLASH_DTYPES:
        return "sdpa"
    try:
        import flash_attn  # noqa: F401
    except ImportError:
        log.warning("flash-attn not installed; using PyTorch SDPA attention (requirements-gpu.txt installs it)")
        return "sdpa"
    return "flash_attention_2"


def family_attention(family: encoders.Family, chosen: str) -> str:
    """The attention a family can run: flash-attention is a decoder path here (T5's relative position
    bias has no flash kernel; encoders take SDPA), and a family without SDPA (Gemma 2's logit
    soft-capping) runs eager attention instead."""
    if chosen == "flash_attention_2" and family.bidirectional:
        chosen = "sdpa"
    if chosen == "sdpa" and not family.sdpa:
        chosen = "eager"
    return chosen


def is_full_model(folder: str) -> bool:
    """A trained-weights folder holding a whole model (``training.method: full``), not a LoRA adapter."""
    return (Path(folder) / "config.json").is_file() and not (Path(folder) / "adapter_config.json").is_file()


def is_partitioned(model: nn.Module) -> bool:
    """True for a model DeepSpeed ZeRO-3 built partitioned (zero.Init): its parameters are stand-ins."""
    return any(hasattr(p, "ds_id") for p in model.parameters())


class MisplacedPartitionError(RuntimeError):
    """A ZeRO-3 stand-in is not where the rank computes: DeepSpeed would gather the weights there."""


def check_stand_ins_on(model: nn.Module, device: torch.device) -> int:
    """Raise :class:`MisplacedPartitionError` unless every ZeRO-3 stand-in is on ``device``; returns their count."""
    stand_ins = [p for p in model.parameters() if hasattr(p, "ds_id")]
    elsewhere = sorted({str(p.device) for p in stand_ins if p.device != device})
    if elsewhere:
        raise MisplacedPartitionError(
            f"{sum(p.device != device for p in stand_ins)} of {len(stand_ins)} ZeRO-3 stand-ins are on "
            f"{', '.join(elsewhere)}, not {device}: something moved the partitioned model after loading"
        )
    return len(stand_ins)


def load_text_model(
    path: str,
    architecture: str,
    dtype: str = "float32",
    device: str = "cpu",
    revision: str | None = None,
    adapter_dir: str | None = None,
    attention: str | None = None,
) -> nn.Module:
    """The backbone's transformer without LM head (plus a trained LoRA adapter if given).

    For Qwen2.5-VL, the language model alone: text-only input never reaches the vision
    tower, and its multimodal rotary positions reduce to ordinary 1-D positions, so the
    language model is the whole text path; the vision weights are dropped to save memory.
    ``attention`` overrides the attention implementation chosen for ``device`` (training
    loads on the CPU, or partitioned, but computes on the GPU). T5: the encoder stack alone
    (``T5EncoderModel``); a sentence-transformers folder: its Transformer module's folder.
    """
    family = encoders.family(architecture)
    if architecture == "sentence_transformers" and not (adapter_dir and is_full_model(adapter_dir)):
        path, revision = encoders.sentence_transformers_config(str(path))["transformer_path"], None
    model_class = AutoModel if family.model_class == "AutoModel" else getattr(transformers, family.model_class)
    if adapter_dir is not None and is_full_model(adapter_dir):
        path, revision, adapter_dir = adapter_dir, None, None  # full fine-tuning exported the whole model
    if adapter_dir is not None:
        missing = [name for name in ADAPTER_FILES if not (Path(adapter_dir) / name).is_file()]
        if missing:
            raise DataError(adapter_dir, f"not a trained adapter folder: {', '.join(missing)} missing")
    # Weights go straight from the safetensors files onto the device (device_map): no full host copy
    # of a 7B model per process and no second copy pass. transformers 5 always builds the skeleton on
    # the meta device (what low_cpu_mem_usage used to ask for). On the CPU there is nothing to move,
    # and training (ZeRO-3 places the weights itself) loads on the CPU.
    placement = {"device_map": str(device)} if torch.device(device).type != "cpu" else {}
    model = model_class.from_pretrained(
        path,
        revision=revision,
        dtype=DTYPES[dtype],
        attn_implementation=family_attention(family, attention or attention_implementation(device, dtype)),
        **placement,
    )
    if family.language_model:
        model = model.language_model
    if adapter_dir is not None:
        from peft import PeftModel

        # Merged once at load time: encoding then runs at the speed of the plain backbone.
        model = PeftModel.from_pretrained(model, adapter_dir).merge_and_unload()
    if is_partitioned(model):
        # Under a live HfDeepSpeedConfig (ZeRO-3) zero.Init put each stand-in on cuda:LOCAL_RANK;
        # a .to() here would move them (and later the gathered weights) to ``device``.
        return model.eval()
    return model.to(device).eval()  # a no-op where device_map placed it


def last_token_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Hidden state of each sequence's last real token (right or left padding).

    Computed on the device without a host round trip (no ``bool(...)`` / ``.item()``): the encode
    loop would otherwise wait for every batch's forward pass before queueing the next.
    """
    last = attention_mask.size(1) - 1 - attention_mask.flip(1).argmax(dim=1)  # last column holding a 1
    return hidden[torch.arange(hidden.size(0), device=hidden.device), last]
