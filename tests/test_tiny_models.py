"""The tiny models are reproducible: the same build and texts give byte-identical folders in any process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from llm_retrieval.tiny_models import stdlib_texts, wordpiece_tokenizer

# One of each tokenizer kind: BERT's WordPiece, Qwen's byte-level BPE, a styled BPE (T5's appended </s>).
ARCHITECTURES = ("bert", "qwen2", "t5")
BUILD = {
    "seed": 0,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 1,
    "num_attention_heads": 2,
    "num_key_value_heads": 1,
    "vocab_size": 400,
    "max_position_embeddings": 64,
}
TEXTS = ["def add(a, b): return a + b", "Sort a list in place.", "self._cache[key] = value  # Überschreiben"]
BUILD_AND_ENCODE = """
import json, sys
from pathlib import Path
from transformers import AutoTokenizer
from llm_retrieval.tiny_models import build_tiny_model, stdlib_texts
out, build, texts = Path(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[3])
ids = {}
for architecture in sys.argv[4:]:
    build_tiny_model(architecture, build, out / architecture, texts=stdlib_texts(10))
    ids[architecture] = AutoTokenizer.from_pretrained(out / architecture)(texts)["input_ids"]
print(json.dumps(ids))
"""


def build_in_a_fresh_process(out: Path, hash_seed: str) -> dict:
    """Each process gets its own hash seeds (Python's and the Rust tokenizers' own random ones)."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    args = [json.dumps(BUILD), json.dumps(TEXTS), *ARCHITECTURES]
    proc = subprocess.run(
        [sys.executable, "-c", BUILD_AND_ENCODE, str(out), *args], env=env, capture_output=True, text=True, check=False
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_two_processes_build_byte_identical_tiny_models_that_give_identical_ids(tmp_path):
    first = build_in_a_fresh_process(tmp_path / "first", "1")
    second = build_in_a_fresh_process(tmp_path / "second", "2")
    for architecture in ARCHITECTURES:
        a, b = folder_bytes(tmp_path / "first" / architecture), folder_bytes(tmp_path / "second" / architecture)
        assert a.keys() == b.keys()
        differing = [name for name in a if a[name] != b[name]]
        assert not differing, f"{architecture}: {differing} differ between two builds of the same config"
        assert first[architecture] == second[architecture]


@pytest.fixture(scope="module")
def bert_tokenizer():
    return wordpiece_tokenizer(stdlib_texts(10), 400)


def test_the_wordpiece_vocabulary_starts_with_the_specials_and_holds_every_character(bert_tokenizer):
    vocab = bert_tokenizer.backend_tokenizer.get_vocab()
    assert [vocab[t] for t in ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")] == [0, 1, 2, 3, 4]
    assert len(vocab) == 400
    seen = {c for text in stdlib_texts(10) for c in text.lower() if c.isascii() and c.isalnum()}
    assert all(c in vocab and f"##{c}" in vocab for c in seen)


def test_the_wordpiece_tokenizer_splits_words_into_trained_pieces_inside_cls_and_sep(bert_tokenizer):
    encoded = bert_tokenizer("Return self._cache")
    pieces = bert_tokenizer.convert_ids_to_tokens(encoded["input_ids"])
    assert pieces[0] == "[CLS]" and pieces[-1] == "[SEP]" and "[UNK]" not in pieces
    assert "return" in pieces and "self" in pieces  # frequent stdlib words are whole pieces
    assert any(p.startswith("##") for p in bert_tokenizer.convert_ids_to_tokens(bert_tokenizer("xyzzyq")["input_ids"]))
