"""Training sources of the multi-task mixtures, on local stand-ins of the upstream files: NLI triplets
(all-nli's triplet config), BM25-mined groups from any collection's training split (BEIR HotpotQA train,
ToolBench train queries, QReCC training turns), all in the groups format train/dataset.py reads."""

import json

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from test_data_toolbench_qrecc import PASSAGES, TURNS, _toolbench

from llm_retrieval.bm25 import build_index
from llm_retrieval.data.beir import prepare_beir_local
from llm_retrieval.data.canonical import TRAIN_GROUPS_SCHEMA, DataError
from llm_retrieval.data.nli import passage_id, prepare_nli_groups
from llm_retrieval.data.qrecc import prepare_qrecc
from llm_retrieval.data.toolbench import prepare_toolbench
from llm_retrieval.pins import hub_refs
from llm_retrieval.train.dataset import read_groups
from llm_retrieval.train.mine import mine_bm25_groups

BM25 = {"k1": 0.9, "b": 0.4, "stopwords": "en", "stemmer": "english"}
TRIPLETS = [
    {
        "anchor": "A person on a horse jumps over a broken down airplane.",
        "positive": "A person is outdoors, on a horse.",
        "negative": "A person is at a diner, ordering an omelette.",
    },
    {
        "anchor": "Children smiling and waving at camera",
        "positive": "There are children present",
        "negative": "The kids are frowning",
    },
    {"anchor": "A boy is jumping on skateboard.", "positive": "The boy does a skateboarding trick.", "negative": ""},
]


def _all_nli(root, rows):
    folder = root / "sentence-transformers" / "all-nli" / "triplet"
    folder.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "train-00000-of-00001.parquet")
    return {"type": "nli", "data_root": str(root)}


def test_nli_triplets_become_groups_with_the_contradiction_as_hard_negative_and_none_without(tmp_path):
    report = prepare_nli_groups(_all_nli(tmp_path / "mirror", TRIPLETS), tmp_path / "groups.parquet", tmp_path)
    assert pq.read_schema(tmp_path / "groups.parquet").equals(TRAIN_GROUPS_SCHEMA)
    rows = pq.read_table(tmp_path / "groups.parquet").to_pylist()
    assert [r["query"] for r in rows] == [t["anchor"] for t in TRIPLETS[:2]]  # the third has no contradiction
    assert rows[0]["negative_passages"][0]["text"] == TRIPLETS[0]["negative"]
    assert rows[1]["positive_passages"][0]["docid"] == passage_id("There are children present")
    assert report["counts"] == {"groups": 2, "dropped_no_negative": 1}
    limited = {**_source_of(tmp_path / "mirror"), "limit": 2}
    prepare_nli_groups(limited, tmp_path / "two.parquet", tmp_path)
    groups = read_groups(tmp_path / "two.parquet")  # what train/dataset.py reads
    assert [g.negatives[0].text for g in groups] == [t["negative"] for t in TRIPLETS[:2]]


def _source_of(root):
    return {"type": "nli", "data_root": str(root)}


def test_an_nli_row_without_its_fields_is_a_named_error_and_no_file_appears(tmp_path):
    source = _all_nli(tmp_path / "mirror", [{"anchor": "a", "positive": "b"}])
    with pytest.raises(DataError, match=r"missing column\(s\) \['negative'\]"):
        prepare_nli_groups(source, tmp_path / "groups.parquet", tmp_path)
    source = _all_nli(tmp_path / "mirror2", [{"anchor": " ", "positive": "b", "negative": "c"}])
    with pytest.raises(DataError, match=r"row 1: anchor and positive must be non-empty strings"):
        prepare_nli_groups(source, tmp_path / "groups.parquet", tmp_path)
    assert not (tmp_path / "groups.parquet").exists()


def test_nli_on_the_hub_is_a_pinnable_dataset():
    config = {"training": {"data": {"type": "nli", "revision": "main"}}}
    ref = hub_refs(config)[0]
    assert (ref.repo, ref.revision, ref.target) == ("sentence-transformers/all-nli", "main", ("training",))


def _mined(collection, tmp_path, query_set="train", depth=2):
    build_index(collection / "corpus.parquet", tmp_path / "index", BM25)
    out = tmp_path / "groups.parquet"
    count = mine_bm25_groups(collection, tmp_path / "index", query_set, out, depth=depth, bm25=BM25)
    return count, read_groups(out)


def test_hotpotqa_style_beir_train_split_mines_groups_across_row_groups(tmp_path, monkeypatch):
    from llm_retrieval.data import beir

    folder = tmp_path / "hotpotqa"
    (folder / "qrels").mkdir(parents=True)
    docs = [
        {"_id": f"d{i}", "title": f"Page {i}", "text": f"fact {i} about river {i % 7} and city {i % 5}"}
        for i in range(60)
    ]
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"river {i} city {i}"}) + "\n" for i in range(5))
    )
    (folder / "qrels" / "train.tsv").write_text(
        "query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{i}\t1\nq{i}\td{i + 7}\t1\n" for i in range(5))
    )  # HotpotQA: two supporting pages each
    monkeypatch.setattr(beir, "CORPUS_BATCH", 8)  # several row groups: every one is scanned for texts
    prepare_beir_local({"type": "beir_local", "path": str(folder)}, ["train"], tmp_path / "coll", tmp_path)
    count, groups = _mined(tmp_path / "coll", tmp_path, depth=3)
    assert count == 5 and all(len(g.positives) == 2 and len(g.negatives) == 3 for g in groups)
    first = next(g for g in groups if g.query_id == "q0")
    assert {p.docid for p in first.positives} == {"d0", "d7"} and first.positives[0].title.startswith("Page")
    assert not {p.docid for p in first.negatives} & {"d0", "d7"}


def test_toolbench_training_queries_mine_groups_over_the_api_documents(tmp_path):
    prepare_toolbench(
        {"type": "toolbench", "path": str(_toolbench(tmp_path / "G1"))}, ["train"], tmp_path / "coll", tmp_path
    )
    count, groups = _mined(tmp_path / "coll", tmp_path)
    assert count == 1 and groups[0].query == "Hourly weather in Rome" and groups[0].positives[0].docid == "2"
    assert groups[0].negatives and json.loads(groups[0].negatives[0].text)["tool_name"] == "Forecast"


def test_qrecc_training_turns_mine_groups_with_context_and_question_as_the_query(tmp_path):
    (tmp_path / "qrecc_train.json").write_text(json.dumps(TURNS))
    (tmp_path / "passages.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PASSAGES))
    source = {
        "type": "qrecc",
        "turns": {"train": str(tmp_path / "qrecc_train.json")},
        "passages": str(tmp_path / "passages.jsonl"),
    }
    prepare_qrecc(source, ["train"], tmp_path / "coll", tmp_path)
    count, groups = _mined(tmp_path / "coll", tmp_path)
    second = next(g for g in groups if g.query_id == "74_2")
    assert second.query.endswith("Cheap to run. Tell me more about Tesla") and count == len(groups)
    assert {p.docid for p in second.positives} == {"p2", "p3"}


def test_nli_training_tasks_on_the_hub_are_pinned_by_the_lock():
    from llm_retrieval.pins import apply_lock

    config = {"training_tasks": {"nli": {"source": {"type": "nli", "revision": "main"}}}}
    sha = "0123456789abcdef0123456789abcdef01234567"
    ref = hub_refs(config)[0]
    assert (ref.repo, ref.where) == ("sentence-transformers/all-nli", "training_tasks.nli.source.revision")
    assert apply_lock(config, {"datasets": {"sentence-transformers/all-nli": {"main": sha}}}) == []
    assert config["training_tasks"]["nli"]["source"]["revision"] == sha
