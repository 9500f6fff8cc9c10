"""The validation policy every collection passes (docs/data.md, "Data validation")."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest

from llm_retrieval.data.canonical import DataError, read_qrels, write_corpus, write_qrels, write_queries
from llm_retrieval.data.staging import finish_collection, staged_collection
from llm_retrieval.data.validate import CHECKS, validate_collection

DOCS = [
    {"id": "d1", "title": "", "text": "one"},
    {"id": "d2", "title": "t", "text": "two"},
    {"id": "d3", "title": "", "text": "three"},
]
QUERIES = [{"query_set": "test", "id": "q1", "text": "first"}, {"query_set": "test", "id": "q2", "text": "second"}]
QRELS = [
    {"query_set": "test", "query_id": "q1", "doc_id": "d1", "relevance": 1},
    {"query_set": "test", "query_id": "q2", "doc_id": "d2", "relevance": 2},
]


def collection(folder, docs=DOCS, queries=QUERIES, qrels=QRELS):
    folder.mkdir(parents=True, exist_ok=True)
    write_corpus(folder / "corpus.parquet", docs)
    write_queries(folder / "queries.parquet", queries)
    write_qrels(folder / "qrels.parquet", qrels)
    return folder


def checks(report) -> dict:
    return {w["check"]: w for w in report["warnings"]}


def test_clean_collection(tmp_path):
    report = validate_collection(collection(tmp_path), ["test"])
    assert report == {"counts": {"documents": 3, "queries": {"test": 2}, "qrels": {"test": 2}}, "warnings": []}


def test_duplicate_document_ids_are_an_error(tmp_path):
    docs = DOCS + [{"id": "d2", "title": "", "text": "again"}, {"id": "d3", "title": "", "text": "again"}]
    with pytest.raises(DataError) as err:
        validate_collection(collection(tmp_path, docs=docs))
    assert "corpus.parquet" in str(err.value) and "2 duplicate document id(s)" in str(err.value)
    assert "'d2'" in str(err.value) and "'d3'" in str(err.value)


def test_duplicate_query_ids_within_a_set_are_an_error(tmp_path):
    queries = QUERIES + [{"query_set": "test", "id": "q1", "text": "dup"}]
    with pytest.raises(DataError, match=r"queries\.parquet: 1 duplicate query id\(s\) \(query_set:id\): 'test:q1'"):
        validate_collection(collection(tmp_path, queries=queries))


def test_same_query_id_in_two_sets_is_fine(tmp_path):
    queries = QUERIES + [{"query_set": "dev", "id": "q1", "text": "first"}]
    qrels = QRELS + [{"query_set": "dev", "query_id": "q1", "doc_id": "d3", "relevance": 1}]
    report = validate_collection(collection(tmp_path, queries=queries, qrels=qrels))
    assert report["counts"]["queries"] == {"test": 2, "dev": 1}


def test_query_set_without_qrels_is_an_error(tmp_path):
    queries = QUERIES + [{"query_set": "dev", "id": "q7", "text": "unjudged"}]
    with pytest.raises(DataError, match=r"qrels\.parquet: query set 'dev' has no qrels"):
        validate_collection(collection(tmp_path, queries=queries))


def test_expected_query_set_missing_is_an_error(tmp_path):
    with pytest.raises(DataError, match=r"queries\.parquet: query set 'train' has no queries"):
        validate_collection(collection(tmp_path), ["test", "train"])


def test_empty_texts_are_counted(tmp_path):
    docs = DOCS + [{"id": "d4", "title": "t", "text": "  "}, {"id": "d5", "title": "", "text": ""}]
    queries = QUERIES + [{"query_set": "test", "id": "q3", "text": ""}]
    qrels = QRELS + [{"query_set": "test", "query_id": "q3", "doc_id": "d4", "relevance": 1}]
    found = checks(validate_collection(collection(tmp_path, docs=docs, queries=queries, qrels=qrels)))
    assert found["empty_document_text"]["count"] == 2 and found["empty_document_text"]["examples"] == ["d4", "d5"]
    assert found["empty_query_text"]["count"] == 1 and found["empty_query_text"]["examples"] == ["q3"]


def test_unknown_documents_in_qrels_are_counted_and_kept(tmp_path):
    qrels = QRELS + [{"query_set": "test", "query_id": "q1", "doc_id": "gone", "relevance": 1}]
    folder = collection(tmp_path, qrels=qrels)
    found = checks(validate_collection(folder))
    assert found["qrels_unknown_document"]["count"] == 1 and found["qrels_unknown_document"]["examples"] == ["gone"]
    assert read_qrels(folder / "qrels.parquet", "test")["q1"] == {"d1": 1, "gone": 1}


def test_unknown_queries_in_qrels_are_counted_and_dropped(tmp_path):
    qrels = QRELS + [
        {"query_set": "test", "query_id": "ghost", "doc_id": "d1", "relevance": 1},
        {"query_set": "test", "query_id": "ghost", "doc_id": "d2", "relevance": 1},
    ]
    folder = collection(tmp_path, qrels=qrels)
    report = validate_collection(folder)
    found = checks(report)
    assert found["qrels_unknown_query_dropped"]["count"] == 2
    assert found["qrels_unknown_query_dropped"]["examples"] == ["ghost"]
    assert set(read_qrels(folder / "qrels.parquet", "test")) == {"q1", "q2"}  # rewritten without them
    assert report["counts"]["qrels"] == {"test": 2}


def test_all_qrels_of_a_set_unknown_is_an_error(tmp_path):
    qrels = [{"query_set": "test", "query_id": "ghost", "doc_id": "d1", "relevance": 1}]
    with pytest.raises(DataError, match="has no qrels"):
        validate_collection(collection(tmp_path, qrels=qrels))


def test_duplicate_qrels_rows_keep_the_highest_label(tmp_path):
    qrels = QRELS + [{"query_set": "test", "query_id": "q2", "doc_id": "d2", "relevance": 0}]
    folder = collection(tmp_path, qrels=qrels)
    assert checks(validate_collection(folder))["qrels_duplicate_row_max_kept"]["count"] == 1
    assert read_qrels(folder / "qrels.parquet", "test")["q2"] == {"d2": 2}
    assert pq.read_schema(folder / "qrels.parquet").field("relevance").type == "int32"


def test_queries_without_qrels_are_counted(tmp_path):
    queries = QUERIES + [{"query_set": "test", "id": "q9", "text": "nobody judged me"}]
    found = checks(validate_collection(collection(tmp_path, queries=queries)))
    assert found["query_without_qrels"]["count"] == 1 and found["query_without_qrels"]["examples"] == ["q9"]


def test_missing_file_and_columns(tmp_path):
    folder = collection(tmp_path)
    (folder / "queries.parquet").unlink()
    with pytest.raises(DataError, match=r"queries\.parquet: file not found"):
        validate_collection(folder)
    import pyarrow as pa

    pq.write_table(pa.table({"id": ["d1"]}), folder / "corpus.parquet")
    with pytest.raises(DataError, match=r"corpus\.parquet: missing column\(s\) \['title', 'text'\]"):
        validate_collection(folder)


def test_finish_collection_writes_manifest(tmp_path):
    folder = collection(tmp_path, docs=DOCS + [{"id": "d4", "title": "", "text": ""}])
    manifest = finish_collection(folder, {"type": "x", "url": "http://h/x.zip", "warnings": ["unpinned"]}, ["test"])
    assert json.loads((folder / "manifest.json").read_text()) == manifest
    assert manifest["provenance"] == {"type": "x", "url": "http://h/x.zip"}
    assert manifest["validation"]["notes"] == ["unpinned"]
    assert manifest["validation"]["warnings"][0]["check"] == "empty_document_text"


def test_staged_collection_is_all_or_nothing(tmp_path):
    out = tmp_path / "out"
    with staged_collection(out) as stage:
        collection(stage)
        finish_collection(stage, {"type": "x"})
    first = json.loads((out / "manifest.json").read_text())
    assert first["counts"]["documents"] == 3 and not list(tmp_path.glob(".out.staging-*"))
    # A failing rerun leaves the previous collection untouched.
    with pytest.raises(DataError, match="duplicate document"), staged_collection(out) as stage:
        collection(stage, docs=DOCS + DOCS)
        finish_collection(stage, {"type": "x"})
    assert json.loads((out / "manifest.json").read_text()) == first
    assert not list(tmp_path.glob(".out.staging-*"))
    # Forgetting finish_collection is an error, not a collection without manifest.
    with pytest.raises(DataError, match="no manifest.json"), staged_collection(tmp_path / "other") as stage:
        collection(stage)
    assert not (tmp_path / "other").exists()


def test_each_policy_row_is_one_small_named_check():
    import inspect

    from llm_retrieval.data import validate

    lines = validate.__doc__.splitlines()
    rules = [i for i, line in enumerate(lines) if line.startswith("=====")]
    assert len(CHECKS) == len(lines[rules[1] + 1 : rules[2]])  # one check per row of the policy table
    for check in CHECKS:
        assert len(inspect.getsource(check).splitlines()) <= 20, check.__name__
