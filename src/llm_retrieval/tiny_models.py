"""Tiny random-weight models of every family, built offline from transformers' config classes.

Each is saved as an ordinary Hugging Face folder (config + safetensors + a tokenizer trained on the
interpreter's own Python sources, with the family's special tokens and chat template), so tests and
the offline demo load it through ``from_pretrained`` exactly as the hub models load. Each tokenizer
mimics its family's real one where it matters to the study: the BOS that Llama/Mistral/Gemma add,
Phi's and Llama-2 base's missing chat template, T5's appended ``</s>``, BERT's ``[CLS]``/``[SEP]``.
"""

from __future__ import annotations

import json
import sysconfig
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
import transformers
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerFast

from .atomic import atomic_path
from .encoders import family

# Qwen's ChatML layout; the 7B tokenizers carry their own (longer) template.
CHATML_TEMPLATE = (
    "{% for message in messages %}<|im_start|>{{ message['role'] }}\n{{ message['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIAL_TOKENS = [
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|image_pad|>",
    "<|video_pad|>",
]


@dataclass(frozen=True)
class TokenizerStyle:
    """A family's tokenizer, as far as the study can tell: special tokens, BOS, chat template."""

    specials: tuple[str, ...]
    eos: str
    pad: str | None = None
    bos: str | None = None
    adds_bos: bool = False  # the tokenizer's template puts the BOS before every text
    chat_template: str | None = None  # None: a base model without one (the plain fallback prompt)
    appends_eos: bool = False  # T5: ``text </s>``


LLAMA_SPECIALS = ("<unk>", "<s>", "</s>")
MISTRAL_TEMPLATE = "{{ bos_token }}{% for message in messages %}[INST] {{ message['content'] }} [/INST]{% endfor %}"
GEMMA_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n{{ message['content'] }}"
    "<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)
PHI3_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>\n{{ message['content'] }}<|end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)
GEMMA_STYLE = TokenizerStyle(
    ("<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"),
    "<eos>",
    "<pad>",
    "<bos>",
    True,
    GEMMA_TEMPLATE,
)
STYLES = {
    "llama": TokenizerStyle(LLAMA_SPECIALS, "</s>", None, "<s>", True),  # Llama-2 base: no chat template
    "mistral": TokenizerStyle(LLAMA_SPECIALS, "</s>", None, "<s>", True, MISTRAL_TEMPLATE),
    "gemma": GEMMA_STYLE,
    "gemma2": GEMMA_STYLE,
    "phi": TokenizerStyle(("<|endoftext|>",), "<|endoftext|>", None, "<|endoftext|>"),  # no chat template
    "phi3": TokenizerStyle(
        ("<unk>", "<s>", "</s>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|end|>"),
        "<|endoftext|>",
        "<|endoftext|>",
        "<s>",
        False,
        PHI3_TEMPLATE,
    ),
    "t5": TokenizerStyle(("<pad>", "</s>", "<unk>"), "</s>", "<pad>", appends_eos=True),
}


def stdlib_texts(limit_files: int = 400) -> Iterator[str]:
    """Python sources of the running interpreter: the offline text the demo tokenizer learns from."""
    root = Path(sysconfig.get_paths()["stdlib"])
    for path in sorted(root.glob("*.py"))[:limit_files]:
        yield path.read_text(encoding="utf-8", errors="replace")


def train_tokenizer(texts: Iterator[str], vocab_size: int) -> PreTrainedTokenizerFast:
    """Qwen's byte-level BPE with its special tokens and ChatML template."""
    tok = _byte_level_bpe(texts, vocab_size, SPECIAL_TOKENS)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=SPECIAL_TOKENS[1:],
    )
    fast.chat_template = CHATML_TEMPLATE
    return fast


def _byte_level_bpe(texts: Iterator[str], vocab_size: int, specials) -> Tokenizer:
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(specials),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer)
    return tok


def styled_tokenizer(style: TokenizerStyle, texts: Iterator[str], vocab_size: int) -> PreTrainedTokenizerFast:
    tok = _byte_level_bpe(texts, vocab_size, style.specials)
    if style.adds_bos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{style.bos} $A", special_tokens=[(style.bos, tok.token_to_id(style.bos))]
        )
    elif style.appends_eos:
        tok.post_processor = processors.TemplateProcessing(
            single=f"$A {style.eos}", special_tokens=[(style.eos, tok.token_to_id(style.eos))]
        )
    named = {
        "eos_token": style.eos,
        "pad_token": style.pad,
        "bos_token": style.bos,
        "unk_token": "<unk>" if "<unk>" in style.specials else None,
    }
    named = {key: value for key, value in named.items() if value}
    others = [t for t in style.specials if t not in named.values()]
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, additional_special_tokens=others, **named)
    fast.chat_template = style.chat_template
    return fast


WORDPIECE_SPECIALS = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")


def wordpiece_tokenizer(texts, vocab_size: int) -> PreTrainedTokenizerFast:
    """BERT's lowercased WordPiece with ``[CLS] text [SEP]``."""
    normalizer, pre_tokenizer = normalizers.BertNormalizer(lowercase=True), pre_tokenizers.BertPreTokenizer()
    words = Counter(w for text in texts for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    tok = Tokenizer(models.WordPiece(wordpiece_vocab(words, vocab_size), unk_token="[UNK]"))
    tok.normalizer, tok.pre_tokenizer, tok.decoder = normalizer, pre_tokenizer, decoders.WordPiece()
    tok.add_special_tokens(list(WORDPIECE_SPECIALS))
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]",
        special_tokens=[("[CLS]", tok.token_to_id("[CLS]")), ("[SEP]", tok.token_to_id("[SEP]"))],
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="[PAD]",
        unk_token="[UNK]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )


def wordpiece_vocab(words: Counter, vocab_size: int) -> dict[str, int]:
    """What ``WordPieceTrainer`` learns from these word counts (BPE merges, ``##`` on word-inner pieces),
    the same in every process. That trainer numbers the ``##`` characters in Rust's per-process hash
    order, and merge ties go to the lower ids, so its vocabulary differs run to run. Here each word-inner
    character is renamed to a private-use one first: a plain BPE trainer numbers its alphabet in sorted
    order, so its merges are fixed; the names are mapped back to ``##`` pieces afterwards."""
    chars = sorted({c for word in words for c in word})
    inner = sorted({c for word in words for c in word[1:]})
    taken = set(chars)
    unused = (chr(c) for c in range(0xF0000, 0x110000) if chr(c) not in taken)
    renamed = dict(zip(inner, unused, strict=False))
    if len(renamed) < len(inner):
        raise ValueError(f"wordpiece_vocab: {len(inner)} distinct characters inside words; at most 131068 fit")
    original = {new: old for old, new in renamed.items()}
    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(WORDPIECE_SPECIALS), initial_alphabet=chars, show_progress=False
    )
    spelled = (word[0] + "".join(renamed[c] for c in word[1:]) for word in words)
    bpe.train_from_iterator((f"{w} " * count for w, count in zip(spelled, words.values(), strict=True)), trainer)
    return {
        ("##" if token[0] in original else "") + "".join(original.get(c, c) for c in token): i
        for token, i in bpe.get_vocab().items()
    }


# --- configs ------------------------------------------------------------------------------------


def decoder_config(architecture: str, build: dict, tokenizer: PreTrainedTokenizerFast):
    heads = build["num_attention_heads"]
    text = {
        "hidden_size": build["hidden_size"],
        "intermediate_size": build["intermediate_size"],
        "num_hidden_layers": build["num_hidden_layers"],
        "num_attention_heads": heads,
        "num_key_value_heads": build["num_key_value_heads"],
        "vocab_size": len(tokenizer),
        "max_position_embeddings": build["max_position_embeddings"],
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id,
        "tie_word_embeddings": True,
    }
    if architecture in ("qwen2", "qwen2_5_vl"):
        text["bos_token_id"] = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    if architecture in ("qwen3", "gemma", "gemma2"):
        text["head_dim"] = build["hidden_size"] // heads  # their configs default to 128 / 256
    if architecture == "qwen2_5_vl":
        return _vl_config(build, tokenizer, text)
    return getattr(transformers, family(architecture).config_class)(**text)


def _vl_config(build: dict, tokenizer, text: dict):
    head_dim = build["hidden_size"] // build["num_attention_heads"]
    half = head_dim // 2  # mrope splits the rotary half-dimension into temporal / height / width
    text["rope_scaling"] = {"type": "mrope", "mrope_section": [half - 2 * (half // 3), half // 3, half // 3]}
    vision = {
        "depth": 1,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_heads": 2,
        "out_hidden_size": build["hidden_size"],
        "fullatt_block_indexes": [0],
        "window_size": 112,
        "patch_size": 14,
        "spatial_merge_size": 2,
        "temporal_patch_size": 2,
    }
    ids = {
        name: tokenizer.convert_tokens_to_ids(tok)
        for name, tok in [
            ("vision_start_token_id", "<|vision_start|>"),
            ("vision_end_token_id", "<|vision_end|>"),
            ("image_token_id", "<|image_pad|>"),
            ("video_token_id", "<|video_pad|>"),
        ]
    }
    return transformers.Qwen2_5_VLConfig(text_config=text, vision_config=vision, **ids)


def encoder_config(architecture: str, build: dict, tokenizer: PreTrainedTokenizerFast):
    if architecture == "t5":  # t5-v1_1: gated-GELU MLP, untied head
        return transformers.T5Config(
            vocab_size=len(tokenizer),
            d_model=build["hidden_size"],
            d_ff=build["intermediate_size"],
            d_kv=build["hidden_size"] // build["num_attention_heads"],
            num_layers=build["num_hidden_layers"],
            num_heads=build["num_attention_heads"],
            feed_forward_proj="gated-gelu",
            tie_word_embeddings=False,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=tokenizer.eos_token_id,
            decoder_start_token_id=tokenizer.pad_token_id,
        )
    return transformers.BertConfig(
        vocab_size=len(tokenizer),
        hidden_size=build["hidden_size"],
        intermediate_size=build["intermediate_size"],
        num_hidden_layers=build["num_hidden_layers"],
        num_attention_heads=build["num_attention_heads"],
        max_position_embeddings=build["max_position_embeddings"],
        pad_token_id=tokenizer.pad_token_id,
    )


# --- building -------------------------------------------------------------------------------------


def _tokenizer_for(architecture: str, build: dict, texts) -> PreTrainedTokenizerFast:
    if architecture in ("bert", "sentence_transformers"):
        return wordpiece_tokenizer(texts, build["vocab_size"])
    if architecture in STYLES:
        return styled_tokenizer(STYLES[architecture], texts, build["vocab_size"])
    return train_tokenizer(texts, build["vocab_size"])


def _model_for(architecture: str, build: dict, tokenizer):
    if architecture in ("bert", "sentence_transformers"):
        return transformers.BertModel(encoder_config("bert", build, tokenizer), add_pooling_layer=False)
    if architecture == "t5":  # saved whole, as the hub's t5-v1_1 checkpoints are; T5EncoderModel loads its encoder
        return transformers.T5ForConditionalGeneration(encoder_config("t5", build, tokenizer))
    config = decoder_config(architecture, build, tokenizer)
    if architecture == "qwen2_5_vl":
        return transformers.Qwen2_5_VLForConditionalGeneration(config)
    return transformers.AutoModelForCausalLM.from_config(config)


def build_tiny_model(architecture: str, build: dict, out_dir: str | Path, texts=None) -> dict:
    """Write a random-weight model of ``architecture`` with a trained tokenizer to ``out_dir``
    (``texts``: what the tokenizer learns from; default the interpreter's Python sources)."""
    torch.manual_seed(build["seed"])
    defaults = {
        "max_position_embeddings": 512 if architecture in ("bert", "sentence_transformers") else 4096,
        "tokenizer_files": 400,
    }  # the schema's, for builds outside the workflow (tests, benchmarks)
    build = {**defaults, **build}
    texts = texts if texts is not None else stdlib_texts(build["tokenizer_files"])
    tokenizer = _tokenizer_for(architecture, build, texts)
    model = _model_for(architecture, build, tokenizer)
    with atomic_path(out_dir, is_dir=True) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        if architecture == "sentence_transformers":
            write_sentence_transformers_files(Path(tmp), build)
    return {
        "path": str(out_dir),
        "revision": None,
        "architecture": architecture,
        "built": build,
        "parameters": sum(p.numel() for p in model.parameters()),
    }


TINY_ST_PROMPTS = {"query": "query: ", "document": "passage: "}  # e5-style, so the prompt path is exercised


def write_sentence_transformers_files(folder: Path, build: dict) -> None:
    """modules.json (Transformer, mean Pooling, Normalize) and the prompts, as sentence-transformers writes them."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (folder / "1_Pooling").mkdir()
    (folder / "2_Normalize").mkdir()
    files = {
        "modules.json": modules,
        "1_Pooling/config.json": {
            "word_embedding_dimension": build["hidden_size"],
            "pooling_mode_cls_token": False,
            "pooling_mode_mean_tokens": True,
            "pooling_mode_max_tokens": False,
            "pooling_mode_mean_sqrt_len_tokens": False,
        },
        "config_sentence_transformers.json": {
            "prompts": TINY_ST_PROMPTS,
            "default_prompt_name": None,
            "similarity_fn_name": "cosine",
        },
        "sentence_bert_config.json": {"max_seq_length": build["max_position_embeddings"], "do_lower_case": False},
    }
    for name, content in files.items():
        (folder / name).write_text(json.dumps(content, indent=2), encoding="utf-8")
