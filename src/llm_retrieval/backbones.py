"""Backbones: fetch a pinned hub model, or build a tiny random-weight one for the offline demo.

Either way the result is an ordinary Hugging Face folder (config + safetensors +
tokenizer with a chat template) that the encoder loads through from_pretrained.
"""
from __future__ import annotations

import ast
import sysconfig
from pathlib import Path
from typing import Iterator

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

from .atomic import atomic_path, write_json

# Qwen's ChatML layout; the 7B tokenizers carry their own (longer) template.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>",
                  "<|vision_start|>", "<|vision_end|>", "<|image_pad|>", "<|video_pad|>"]


def stdlib_texts(limit_files: int = 400) -> Iterator[str]:
    """Python sources of the running interpreter: the offline text the demo tokenizer learns from."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py"))[:limit_files]:
        yield path.read_text(encoding="utf-8", errors="replace")


def train_tokenizer(texts: Iterator[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=SPECIAL_TOKENS[1:])
    fast.chat_template = CHATML_TEMPLATE
    return fast


def tiny_config(architecture: str, build: dict, tokenizer: PreTrainedTokenizerFast):
    text = dict(hidden_size=build["hidden_size"], intermediate_size=build["intermediate_size"],
                num_hidden_layers=build["num_hidden_layers"], num_attention_heads=build["num_attention_heads"],
                num_key_value_heads=build["num_key_value_heads"], vocab_size=len(tokenizer),
                max_position_embeddings=build.get("max_position_embeddings", 4096), bos_token_id=tokenizer.convert_tokens_to_ids("<|endoftext|>"),
                eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id, tie_word_embeddings=True)
    if architecture == "qwen2":
        return Qwen2Config(**text)
    from transformers import Qwen2_5_VLConfig
    head_dim = build["hidden_size"] // build["num_attention_heads"]
    half = head_dim // 2  # mrope splits the rotary half-dimension into temporal / height / width
    text["rope_scaling"] = {"type": "mrope", "mrope_section": [half - 2 * (half // 3), half // 3, half // 3]}
    vision = dict(depth=1, hidden_size=32, intermediate_size=64, num_heads=2, out_hidden_size=build["hidden_size"],
                  fullatt_block_indexes=[0], window_size=112, patch_size=14, spatial_merge_size=2, temporal_patch_size=2)
    ids = {name: tokenizer.convert_tokens_to_ids(tok) for name, tok in [
        ("vision_start_token_id", "<|vision_start|>"), ("vision_end_token_id", "<|vision_end|>"),
        ("image_token_id", "<|image_pad|>"), ("video_token_id", "<|video_pad|>")]}
    return Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)


def build_tiny_backbone(architecture: str, build: dict, out_dir: str | Path) -> dict:
    """Write a random-weight model of the given architecture with a trained tokenizer to ``out_dir``."""
    torch.manual_seed(build["seed"])
    tokenizer = train_tokenizer(stdlib_texts(), build["vocab_size"])
    config = tiny_config(architecture, build, tokenizer)
    if architecture == "qwen2":
        model = Qwen2ForCausalLM(config)
    else:
        from transformers import Qwen2_5_VLForConditionalGeneration
        model = Qwen2_5_VLForConditionalGeneration(config)
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
    return {"path": str(out_dir), "revision": None, "architecture": architecture, "built": build,
            "parameters": sum(p.numel() for p in model.parameters())}


def fetch_hub_backbone(hub_id: str, revision: str, architecture: str) -> dict:
    """Download (or find in the HF cache) the pinned snapshot; run where the internet is reachable."""
    from huggingface_hub import snapshot_download

    path = snapshot_download(hub_id, revision=revision,
                             allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"])
    return {"path": path, "hub_id": hub_id, "revision": revision, "architecture": architecture}


def resolve_backbone(spec: dict, model_dir: str | Path, record_path: str | Path) -> dict:
    """Make the backbone available locally and record where it is (``backbone.json``)."""
    if "build" in spec and spec["architecture"] == "bert":
        from .encoders import build_tiny_bert

        record = build_tiny_bert(spec["build"], stdlib_texts(), model_dir)
    elif "build" in spec:
        record = build_tiny_backbone(spec["architecture"], spec["build"], model_dir)
    else:
        record = fetch_hub_backbone(spec["hub_id"], spec.get("revision", "main"), spec["architecture"])
    record["strip_think"] = spec.get("strip_think", False)
    if spec.get("pooling"):
        record["pooling"] = spec["pooling"]
    write_json(record_path, record)
    return record
