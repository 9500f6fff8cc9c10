"""LongEmbed (NarrativeQA) as a real source, read from local files in the hub repository's layout."""

from __future__ import annotations

import json

import pytest

from llm_retrieval.data.canonical import DataError, read_qrels, read_queries
from llm_retrieval.data.sources import prepare_collection


def write_layout(root, name="narrativeqa", docs=3):
    folder = root / name
    folder.mkdir(parents=True)
    rows = {
        "corpus": [{"doc_id": f"doc_{i}", "text": f"story {i} " + "word " * 2000} for i in range(docs)],
        "queries": [{"qid": f"query_{i}", "text": f"what happens in story {i}?"} for i in range(docs)],
        "qrels": [{"qid": f"query_{i}", "doc_id": f"doc_{i}"} for i in range(docs)],
    }
    for split, records in rows.items():
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return root


def test_narrativeqa_layout_becomes_a_canonical_collection(tmp_path):
    root = write_layout(tmp_path / "LongEmbed")
    out = tmp_path / "out"
    manifest = prepare_collection(
        {"type": "longembed", "name": "narrativeqa", "local_root": str(root)}, ["test"], out, tmp_path / "work"
    )
    assert read_queries(out / "queries.parquet", "test")["query_1"] == "what happens in story 1?"
    assert read_qrels(out / "qrels.parquet", "test") == {f"query_{i}": {f"doc_{i}": 1} for i in range(3)}
    assert "longembed" in json.dumps(manifest)


def test_a_missing_split_file_or_a_wrong_query_set_is_named(tmp_path):
    root = write_layout(tmp_path / "LongEmbed")
    (root / "narrativeqa/qrels.jsonl").unlink()
    with pytest.raises(DataError, match="qrels.jsonl"):
        prepare_collection({"type": "longembed", "local_root": str(root)}, ["test"], tmp_path / "o", tmp_path / "w")
    with pytest.raises(DataError, match="one test set"):
        prepare_collection({"type": "longembed", "local_root": str(root)}, ["dev"], tmp_path / "o", tmp_path / "w")
