"""FAISS search over shards, BEIR self-hits, pytrec_eval metrics as PROTOCOL.md specifies."""

import numpy as np
import pytest

from llm_retrieval.embeddings import write_embeddings
from llm_retrieval.metrics import cut_run, evaluate
from llm_retrieval.runs import read_run
from llm_retrieval.search import dense_search, search_shards


def _write_shards(tmp_path, vectors, ids, n_shards):
    paths = []
    for s, (part_ids, part_vecs) in enumerate(
        zip(np.array_split(np.array(ids), n_shards), np.array_split(vectors, n_shards))
    ):
        path = tmp_path / f"shard-{s}.parquet"
        write_embeddings(path, list(part_ids), part_vecs)
        paths.append(path)
    return paths


def test_sharded_search_equals_one_exact_search(tmp_path):
    rng = np.random.default_rng(0)
    docs = rng.normal(size=(300, 16)).astype(np.float32)
    queries = rng.normal(size=(20, 16)).astype(np.float32)
    ids = [f"d{i}" for i in range(300)]
    hits, doc_ids = search_shards(queries, _write_shards(tmp_path, docs, ids, 4), depth=10)
    stored = docs.astype(np.float16).astype(np.float32)
    exact = np.argsort(-(queries @ stored.T), axis=1)[:, :10]
    for rows, best in zip(hits.rows, exact):
        assert [doc_ids[r] for r in rows] == [ids[i] for i in best]


def test_self_hit_is_dropped_and_depth_kept(tmp_path):
    docs = np.eye(5, dtype=np.float32)
    ids = ["q1", "d1", "d2", "d3", "d4"]
    shards = _write_shards(tmp_path, docs, ids, 2)
    query = np.array([[1.0, 0.5, 0.4, 0.3, 0.2]], dtype=np.float32)
    dense_search(["q1"], query, shards, top_k=3, drop_self=True, out_path=tmp_path / "run.trec", tag="t")
    assert list(read_run(tmp_path / "run.trec")["q1"]) == ["d1", "d2", "d3"]
    dense_search(["q1"], query, shards, top_k=3, drop_self=False, out_path=tmp_path / "run2.trec", tag="t")
    assert list(read_run(tmp_path / "run2.trec")["q1"]) == ["q1", "d1", "d2"]


def test_mrr10_is_cut_at_ten_unlike_recip_rank():
    run = {"q": {f"d{i}": float(100 - i) for i in range(20)}}
    qrels = {"q": {"d14": 1}}
    result = evaluate(run, qrels)["aggregate"]
    assert result["recip_rank"] == pytest.approx(1 / 15)
    assert result["mrr_10"] == 0.0


def test_trec_tie_order_is_doc_id_descending():
    run = {"q": {"a": 1.0, "b": 1.0, "c": 0.5}}
    assert list(cut_run(run, 1)["q"]) == ["b"]
    assert evaluate(run, {"q": {"b": 1}})["aggregate"]["mrr_10"] == 1.0
    assert evaluate(run, {"q": {"a": 1}})["aggregate"]["mrr_10"] == 0.5


def test_query_missing_from_run_counts_as_zero():
    run = {"q1": {"d1": 1.0}}
    qrels = {"q1": {"d1": 1}, "q2": {"d2": 1}}
    result = evaluate(run, qrels)
    assert result["aggregate"]["ndcg_cut_10"] == pytest.approx(0.5)
    assert result["per_query"]["q2"]["ndcg_cut_10"] == 0.0 and result["num_queries_without_results"] == 1


def test_relevance_level_two_changes_recall_not_ndcg():
    run = {"q": {"d1": 2.0, "d2": 1.0}}
    qrels = {"q": {"d1": 1, "d2": 2, "d3": 2}}
    level1, level2 = evaluate(run, qrels, 1)["aggregate"], evaluate(run, qrels, 2)["aggregate"]
    assert level1["recall_100"] == pytest.approx(2 / 3) and level2["recall_100"] == pytest.approx(1 / 2)
    assert level1["ndcg_cut_10"] == pytest.approx(level2["ndcg_cut_10"])


def test_numpy_scores_are_accepted():
    run = {"q": {"d1": np.float32(0.3)}}
    assert evaluate(run, {"q": {"d1": 1}})["aggregate"]["ndcg_cut_10"] == 1.0


def test_ndcg_at_3_and_5_and_recall_at_10_cut_where_their_depth_says():
    # The one relevant document (grade 1) at rank 4, a grade-2 one never retrieved; trec_eval's linear gains.
    run = {"q": {f"d{i}": float(100 - i) for i in range(1, 13)}}
    qrels = {"q": {"d4": 1, "d11": 1, "missing": 2}}
    result = evaluate(run, qrels)["aggregate"]
    ideal_5 = 2 + 1 / np.log2(3) + 1 / np.log2(4)
    assert result["ndcg_cut_3"] == 0.0
    assert result["ndcg_cut_5"] == pytest.approx((1 / np.log2(5)) / ideal_5)
    assert result["recall_10"] == pytest.approx(1 / 3) and result["recall_100"] == pytest.approx(2 / 3)


def test_every_reported_measure_is_one_the_dag_build_accepts():
    from llm_retrieval.evaluation_kinds import RETRIEVAL_MEASURES

    scores = evaluate({"q": {"d1": 1.0}}, {"q": {"d1": 1}})
    assert set(scores["aggregate"]) == set(RETRIEVAL_MEASURES) == set(scores["per_query"]["q"])
