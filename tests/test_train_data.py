"""Training data: BM25-mined groups, deterministic group sampling and batch order, input formatting."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest

from llm_retrieval.bm25 import build_index
from llm_retrieval.data.canonical import TRAIN_GROUPS_SCHEMA, DataError, write_corpus, write_qrels, write_queries
from llm_retrieval.modeling import load_tokenizer
from llm_retrieval.train.dataset import Group, GroupSchedule, Passage, read_groups, sample_group
from llm_retrieval.train.engine import ZeroStageError, check_batch, deepspeed_config
from llm_retrieval.train.mine import mine_bm25_groups

BM25 = {"k1": 0.9, "b": 0.4, "stopwords": "en", "stemmer": "english"}
from train_fixtures import synthetic_task, tiny_backbone, training_config, write_groups

from llm_retrieval.train.model import Batcher

DOCS = {
    "d1": "solar panels convert sunlight into electricity",
    "d2": "panels of judges decide solar eclipse photography contests",
    "d3": "wind turbines generate electricity from moving air",
    "d4": "recipes for baking sourdough bread at home",
    "d5": "solar sunlight and electricity: a history of photovoltaic panels",
}


@pytest.fixture
def collection(tmp_path):
    write_corpus(tmp_path / "corpus.parquet", [{"id": d, "title": "", "text": t} for d, t in DOCS.items()])
    write_queries(
        tmp_path / "queries.parquet",
        [
            {"query_set": "train", "id": "q1", "text": "solar panels electricity"},
            {"query_set": "train", "id": "q2", "text": "baking bread"},
            {"query_set": "train", "id": "q3", "text": "a query without judgments"},
            {"query_set": "test", "id": "q9", "text": "wind"},
        ],
    )
    write_qrels(
        tmp_path / "qrels.parquet",
        [
            {"query_set": "train", "query_id": "q1", "doc_id": "d1", "relevance": 1},
            {"query_set": "train", "query_id": "q2", "doc_id": "d4", "relevance": 1},
            {"query_set": "train", "query_id": "q2", "doc_id": "d3", "relevance": 0},
            {"query_set": "test", "query_id": "q9", "doc_id": "d3", "relevance": 1},
        ],
    )
    build_index(tmp_path / "corpus.parquet", tmp_path / "index", BM25)
    return tmp_path


def test_mined_groups_have_qrels_positives_and_bm25_negatives(collection, tmp_path):
    out = tmp_path / "groups.parquet"
    assert mine_bm25_groups(collection, collection / "index", "train", out, depth=2, bm25=BM25) == 1
    table = pq.read_table(out)
    assert table.schema.equals(TRAIN_GROUPS_SCHEMA)
    rows = {r["query_id"]: r for r in table.to_pylist()}
    # q2: "baking bread" shares no term with any other document, so no negative: left out;
    # q3 has no positive; q9 is another query set.
    assert set(rows) == {"q1"}
    assert [p["docid"] for p in rows["q1"]["positive_passages"]] == ["d1"]
    negatives = [p["docid"] for p in rows["q1"]["negative_passages"]]
    assert negatives == ["d5", "d2"]  # shares all three terms, then two; never the positive
    assert rows["q1"]["negative_passages"][0]["text"] == DOCS["d5"]


def test_mining_rejects_qrels_for_unknown_documents(collection, tmp_path):
    write_qrels(
        collection / "qrels.parquet", [{"query_set": "train", "query_id": "q1", "doc_id": "nope", "relevance": 1}]
    )
    with pytest.raises(DataError, match="qrels.parquet.*nope"):
        mine_bm25_groups(collection, collection / "index", "train", tmp_path / "g.parquet", depth=2, bm25=BM25)
    assert not (tmp_path / "g.parquet").exists()


def test_a_source_with_negatives_for_some_queries_only_is_rejected_by_name(tmp_path):
    # A source has hard negatives for every query, or for none (then in-batch negatives only: tests/test_recipes.py).
    import pyarrow as pa

    from llm_retrieval.atomic import write_parquet

    out = tmp_path / "groups.parquet"
    positive = [{"docid": "d4", "title": "", "text": "bread"}]
    write_parquet(
        out,
        pa.Table.from_pylist(
            [
                {"query_id": "q1", "query": "rye", "negative_passages": positive, "positive_passages": positive},
                {"query_id": "q2", "query": "baking bread", "negative_passages": [], "positive_passages": positive},
            ],
            schema=TRAIN_GROUPS_SCHEMA,
        ),
    )
    with pytest.raises(DataError, match="without any negative.*q2"):
        read_groups(out)


def _group(n_neg: int) -> Group:
    return Group(
        "q", "query", (Passage("p", "", "pos"),), tuple(Passage(f"n{i}", "", f"neg {i}") for i in range(n_neg))
    )


def test_group_sampling_is_deterministic_positive_first_and_pads_with_replacement():
    group = _group(10)
    a = sample_group(group, 4, seed=1, epoch=0, index=5)
    assert a == sample_group(group, 4, seed=1, epoch=0, index=5)
    assert a[0].docid == "p" and len({p.docid for p in a[1:]}) == 3  # no repeats when enough
    assert {tuple(p.docid for p in sample_group(group, 4, 1, e, 5)) for e in range(6)} != {tuple(x.docid for x in a)}
    few = sample_group(_group(2), 6, seed=1, epoch=0, index=0)
    assert len(few) == 6 and {p.docid for p in few[1:]} <= {"n0", "n1"}


def test_schedule_covers_each_epoch_once_and_does_not_depend_on_history():
    schedule = GroupSchedule(n_groups=50, per_device=2, accumulation=3, world_size=2, seed=7, epochs=2)
    assert schedule.global_batch == 12 and schedule.steps_per_epoch == 4 and schedule.total_steps == 8
    seen = [
        i
        for step in range(4)
        for micro in range(3)
        for rank in range(2)
        for i in schedule.micro_batch(step, micro, rank)[1]
    ]
    assert len(seen) == len(set(seen)) == 48
    fresh = GroupSchedule(50, 2, 3, 2, seed=7, epochs=2)
    assert fresh.micro_batch(6, 1, 1) == schedule.micro_batch(6, 1, 1)
    assert schedule.micro_batch(5, 0, 0)[0] == 1
    assert GroupSchedule(50, 2, 3, 2, seed=7, max_steps=11).total_steps == 11


def test_global_batch_must_equal_product():
    config = training_config()
    assert check_batch(config, 2) == 16
    with pytest.raises(ValueError, match="global_batch=16.*= 24"):
        check_batch(config, 3)


def test_deepspeed_autos_are_filled(tmp_path):
    config = deepspeed_config(training_config()["deepspeed_config"], training_config(), 2, on_gpu=False, hidden_size=32)
    assert config["zero_optimization"]["stage"] == 3
    assert config["train_batch_size"] == 16 and config["bf16"]["enabled"] is False
    assert config["optimizer"]["params"]["lr"] == training_config()["learning_rate"]
    assert "auto" not in str(config)
    bad = tmp_path / "ds.json"
    bad.write_text('{"zero_optimization": {"stage": 3, "mystery": "auto"}}')
    with pytest.raises(ValueError, match="mystery"):
        deepspeed_config(bad, training_config(), 2, on_gpu=False, hidden_size=32)


def test_zero_stage_overrides_the_one_template_and_unknown_stages_are_named():
    template = training_config()["deepspeed_config"]
    stage2 = deepspeed_config(template, training_config(zero_stage=2), 2, on_gpu=False, hidden_size=32)
    assert stage2["zero_optimization"]["stage"] == 2
    assert not any(k.startswith("stage3_") for k in stage2["zero_optimization"])
    assert deepspeed_config(template, training_config(zero_stage=3), 2, False, 32)["zero_optimization"]["stage"] == 3
    with pytest.raises(ZeroStageError, match="zero_stage=1"):
        deepspeed_config(template, training_config(zero_stage=1), 2, on_gpu=False, hidden_size=32)


def test_batcher_keeps_prefix_and_eos_under_truncation(tmp_path):
    task = synthetic_task()
    path = tiny_backbone(tmp_path / "bb", list(task["docs"].values()))
    tokenizer = load_tokenizer(str(path))
    batcher = Batcher(tokenizer, {"query": 8, "passage": 12})
    long_text = " ".join(task["docs"].values())
    ids, mask = batcher.tensors("passage", [long_text, "the"])
    assert ids.shape == (2, 12)
    assert tokenizer.decode(ids[0, :2]).startswith("Passage")
    assert ids[0, -1] == tokenizer.eos_token_id  # truncated text, EOS kept
    short = int(mask[1].sum())
    assert ids[1, short - 1] == tokenizer.eos_token_id and (ids[1, short:] == tokenizer.pad_token_id).all()
    assert mask[1, :short].all() and not mask[1, short:].any()  # right padding


def test_read_groups_roundtrip(tmp_path):
    groups = read_groups(write_groups(synthetic_task(), tmp_path / "g.parquet", n_neg=3))
    assert len(groups) > 0 and len(groups[0].negatives) == 3 and groups[0].positives[0].docid.startswith("d")


def test_a_rank_run_in_the_callers_process_leaves_its_environment_as_it_was(monkeypatch):
    # A one-rank training runs in the caller's process; a later srun from that process (the Slurm
    # tests, or a workflow step) must not inherit its finished rendezvous (MASTER_ADDR and friends).
    from llm_retrieval.train import driver

    seen = {}
    monkeypatch.setattr(driver, "train_rank", lambda job: seen.update(MASTER_ADDR=os.environ["MASTER_ADDR"]))
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    monkeypatch.setenv("RANK", "7")
    driver._spawned(0, None, 1, 12345)
    assert seen == {"MASTER_ADDR": "127.0.0.1"}
    assert "MASTER_ADDR" not in os.environ and "MASTER_PORT" not in os.environ and os.environ["RANK"] == "7"
