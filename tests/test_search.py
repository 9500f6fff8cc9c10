"""Search: one job per collection, backends that agree, the vectorised merge, full-precision run files."""

import numpy as np
import pytest
from search_oracle import legacy_heap_merge

from llm_retrieval import search
from llm_retrieval.embeddings import EmbeddingMismatchError, write_embeddings
from llm_retrieval.metrics import evaluate
from llm_retrieval.runs import read_run, write_run
from llm_retrieval.search import GpuMemoryError, Hits, gpu_memory_plan, merge_hits, search_collection, search_shards


def _collection(tmp_path, n_docs=120, dim=16, n_shards=3, seed=0, query_sets=("dev", "dl19")):
    rng = np.random.default_rng(seed)
    docs = rng.normal(size=(n_docs, dim)).astype(np.float32)
    ids = [f"d{i:03d}" for i in range(n_docs)]
    shards = []
    for s, rows in enumerate(np.array_split(np.arange(n_docs), n_shards)):
        shards.append(tmp_path / f"shard-{s}.parquet")
        write_embeddings(shards[-1], [ids[i] for i in rows], docs[rows])
    queries = rng.normal(size=(10, dim)).astype(np.float32)
    qids = [f"q{i}" for i in range(10)]
    sets = [query_sets[i % len(query_sets)] for i in range(10)]
    write_embeddings(tmp_path / "queries.parquet", qids, queries, {"query_set": sets})
    return tmp_path / "queries.parquet", shards


def _random_parts(rng, nq, n_shards, k, n_docs, tie_every=0):
    parts = []
    per = n_docs // n_shards
    for s in range(n_shards):
        scores = rng.random((nq, k), dtype=np.float32)
        if tie_every:
            scores = np.round(scores * tie_every) / tie_every  # many exact ties, across shards too
        scores = -np.sort(-scores, axis=1)
        rows = np.stack([rng.choice(np.arange(s * per, (s + 1) * per), k, replace=False) for _ in range(nq)])
        rows[:, -2:] = -1  # short lists: padded rows are not hits
        parts.append(Hits(scores.astype(np.float32), rows))
    return parts


@pytest.mark.parametrize("tie_every", [0, 20])
def test_vectorised_merge_equals_the_heap_merge_ties_included(tie_every):
    rng = np.random.default_rng(tie_every)
    doc_ids = [str(i) for i in range(4000)]  # string order differs from numeric order ("10" < "9")
    parts = _random_parts(rng, nq=30, n_shards=4, k=25, n_docs=4000, tie_every=tie_every)
    merged = merge_hits(parts, doc_ids, depth=40)
    expected = legacy_heap_merge(parts, doc_ids, depth=40)
    got = [
        [(doc_ids[r], float(s)) for s, r in zip(scores, rows) if r >= 0]
        for scores, rows in zip(merged.scores, merged.rows)
    ]
    assert got == expected


def test_merge_keeps_trec_eval_tie_order_at_the_cut():
    doc_ids = ["a", "b", "c", "d"]
    parts = [
        Hits(np.array([[0.5, 0.5]], np.float32), np.array([[0, 2]])),
        Hits(np.array([[0.5, 0.1]], np.float32), np.array([[1, 3]])),
    ]
    merged = merge_hits(parts, doc_ids, depth=2)
    assert [doc_ids[r] for r in merged.rows[0]] == ["c", "b"]  # score desc, then doc id desc


def test_one_job_writes_every_query_sets_run_as_separate_searches_would(tmp_path):
    queries, shards = _collection(tmp_path)
    counts = search_collection(
        queries,
        shards,
        ["dev", "dl19"],
        top_k=5,
        drop_self=False,
        out_dir=tmp_path / "runs",
        tag="t",
        backend="faiss-cpu",
    )
    assert counts == {"dev": 5, "dl19": 5}
    from llm_retrieval.embeddings import read_column, read_embeddings

    ids, vectors = read_embeddings(queries)
    sets = read_column(queries, "query_set")
    for query_set in ("dev", "dl19"):
        chosen = [i for i, s in enumerate(sets) if s == query_set]
        search.dense_search(
            [ids[i] for i in chosen], vectors[chosen], shards, 5, False, tmp_path / f"{query_set}.trec", "t"
        )
        assert (tmp_path / "runs" / f"{query_set}.trec").read_text() == (tmp_path / f"{query_set}.trec").read_text()


def test_killed_search_leaves_no_run_folder(tmp_path, monkeypatch):
    queries, shards = _collection(tmp_path)
    calls = []

    def dying(ranked, tag):
        calls.append(tag)
        if len(calls) == 2:
            raise KeyboardInterrupt("killed")
        return "x\n"

    monkeypatch.setattr(search, "format_run_lines", dying)
    with pytest.raises(KeyboardInterrupt):
        search_collection(queries, shards, ["dev", "dl19"], 5, False, tmp_path / "runs", "t", "faiss-cpu")
    assert not (tmp_path / "runs").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".runs")]


def test_torch_backend_ranks_as_faiss_cpu(tmp_path):
    queries, shards = _collection(tmp_path, n_docs=300, n_shards=4)
    from llm_retrieval.embeddings import read_embeddings

    _, vectors = read_embeddings(queries)
    cpu, ids_cpu = search_shards(vectors, shards, 20, "faiss-cpu")
    torch_hits, ids_torch = search_shards(vectors, shards, 20, "torch", devices=["cpu", "cpu"], num_gpus=2)
    assert ids_cpu == ids_torch
    np.testing.assert_array_equal(cpu.rows, torch_hits.rows)
    np.testing.assert_allclose(cpu.scores, torch_hits.scores, rtol=1e-5, atol=1e-6)


class FakeGpuFaiss:
    """faiss-gpu's flat index API, recording each index's calls; a CPU flat index does the search."""

    def __init__(self):
        self.calls = {}  # GPU -> [("reserve", rows) | ("add", rows, dtype)]

    class StandardGpuResources:
        pass

    class GpuIndexFlatConfig:
        useFloat16 = False
        device = 0

    def install(self, monkeypatch, gpus=2):
        import faiss

        fake = self

        class GpuIndexFlatIP:
            def __init__(self, resources, dim, config):
                assert isinstance(resources, fake.StandardGpuResources) and config.useFloat16
                self.cpu, self.gpu = faiss.IndexFlatIP(dim), config.device
                fake.calls[self.gpu] = []

            def reserveMemory(self, rows):
                fake.calls[self.gpu].append(("reserve", rows))

            def add(self, x):
                fake.calls[self.gpu].append(("add", len(x), x.dtype))
                self.cpu.add(x)

            def search(self, x, k):
                return self.cpu.search(x, k)

        for name, value in (
            ("StandardGpuResources", self.StandardGpuResources),
            ("GpuIndexFlatConfig", self.GpuIndexFlatConfig),
            ("GpuIndexFlatIP", GpuIndexFlatIP),
            ("get_num_gpus", lambda: gpus),
        ):
            monkeypatch.setattr(faiss, name, value, raising=False)
        monkeypatch.setattr(search, "cuda_devices", lambda: gpus)


def test_faiss_gpu_path_builds_an_fp16_index_sharded_over_the_gpus_when_one_is_too_small(tmp_path, monkeypatch):
    """faiss-gpu cannot run here: fake two GPUs and the index class, keep every other step real."""
    queries, shards = _collection(tmp_path, n_docs=200, dim=8)
    FakeGpuFaiss().install(monkeypatch)
    corpus_bytes = 200 * 8 * 2
    monkeypatch.setattr(search, "_gpu_bytes", lambda: [search.GPU_WORKSPACE_BYTES + corpus_bytes // 2 + 64] * 2)
    search_collection(queries, shards, ["dev", "dl19"], 10, False, tmp_path / "gpu", "t", backend="auto")
    search_collection(queries, shards, ["dev", "dl19"], 10, False, tmp_path / "cpu", "t", backend="faiss-cpu")
    for query_set in ("dev", "dl19"):
        assert (tmp_path / "gpu" / f"{query_set}.trec").read_text() == (
            tmp_path / "cpu" / f"{query_set}.trec"
        ).read_text()


def test_each_gpu_index_reserves_its_whole_share_once_before_any_add_and_shards_are_added_in_blocks(
    tmp_path, monkeypatch
):
    """Growing by add() peaks near twice the store (MS MARCO: out of memory at its third shard); and a
    shard widened to float32 whole costs 32 GB of host memory per MS MARCO shard."""
    queries, shards = _collection(tmp_path, n_docs=301, dim=8, n_shards=3)
    fake = FakeGpuFaiss()
    fake.install(monkeypatch)
    monkeypatch.setattr(search, "ADD_BLOCK_ROWS", 16)
    from llm_retrieval.embeddings import read_embeddings

    _, vectors = read_embeddings(queries)
    gpu, _ = search_shards(vectors, shards, 10, "faiss-gpu", num_gpus=2)
    cpu, _ = search_shards(vectors, shards, 10, "faiss-cpu")
    np.testing.assert_array_equal(gpu.rows, cpu.rows)
    assert sorted(fake.calls) == [0, 1]
    for calls in fake.calls.values():
        reserves = [c for c in calls if c[0] == "reserve"]
        adds = [c for c in calls if c[0] == "add"]
        assert calls[0][0] == "reserve" and len(reserves) == 1  # once, before the first add
        assert reserves[0][1] == sum(c[1] for c in adds)  # the GPU's whole share of the corpus
        assert all(c[1] <= 16 and c[2] == np.float32 for c in adds)  # one block widened at a time
    assert sum(c[1] for calls in fake.calls.values() for c in calls if c[0] == "reserve") == 301


def test_faiss_gpu_asked_for_where_faiss_has_no_gpu_says_what_to_install():
    with pytest.raises(ValueError, match="requirements-gpu.txt"):
        search.choose_backend("faiss-gpu")


def test_corpus_fitting_one_gpu_uses_one_and_too_big_a_corpus_says_what_to_set():
    gib = 2**30
    assert gpu_memory_plan(1_000_000, 3584, [80 * gib] * 4) == 1
    assert gpu_memory_plan(8_841_823, 3584, [40 * gib] * 4) == 4
    with pytest.raises(GpuMemoryError, match=r"8,841,823 x 3584 .*59\.0 GiB.*slurm\.kinds\.search\.gpus: 2"):
        gpu_memory_plan(8_841_823, 3584, [48 * gib])


def test_shard_of_another_dimension_is_refused_naming_both_files(tmp_path):
    queries, shards = _collection(tmp_path)
    write_embeddings(shards[1], ["x"], np.ones((1, 12), np.float32))
    with pytest.raises(EmbeddingMismatchError, match="queries.parquet.*shard-1.parquet"):
        search_collection(queries, shards, ["dev"], 5, False, tmp_path / "runs", "t", "faiss-cpu")
    assert not (tmp_path / "runs").exists()


def test_scores_that_six_decimals_would_tie_print_distinct(tmp_path):
    a, b = np.float32(0.12345671), np.float32(0.12345674)
    assert a != b and f"{a:.6f}" == f"{b:.6f}"
    write_run(tmp_path / "run.trec", {"q": [("a", float(b)), ("b", float(a))]}, "t")
    run = read_run(tmp_path / "run.trec")["q"]
    assert np.float32(run["a"]) == b and np.float32(run["b"]) == a
    # trec_eval would reorder printed ties by doc id ("b" first); with all digits "a" stays first.
    assert evaluate({"q": run}, {"q": {"a": 1}})["aggregate"]["mrr_10"] == 1.0


@pytest.mark.gpu
def test_gpu_search_ranks_as_cpu_search(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    queries, shards = _collection(tmp_path, n_docs=5000, dim=64, n_shards=4)
    from llm_retrieval.embeddings import read_embeddings

    _, vectors = read_embeddings(queries)
    cpu, _ = search_shards(vectors, shards, 50, "faiss-cpu")
    for backend in ["torch"] + (["faiss-gpu"] if search.choose_backend() == "faiss-gpu" else []):
        gpu, _ = search_shards(vectors, shards, 50, backend, num_gpus=1)
        np.testing.assert_allclose(gpu.scores, cpu.scores, atol=1e-4)
        same = (gpu.rows == cpu.rows).mean()
        # Differences only where scores agree within the GPU's accumulation-order rounding.
        assert same > 0.99, backend


def test_fp16_shards_give_float32_rankings_apart_from_near_ties_and_metrics_within_0_001(tmp_path):
    """Unit vectors with topical structure (queries near their relevant documents), as trained encoders give."""
    rng = np.random.default_rng(7)
    topics = rng.normal(size=(40, 64))
    docs = topics[np.arange(2000) % 40] + 0.8 * rng.normal(size=(2000, 64))
    docs = (docs / np.linalg.norm(docs, axis=1, keepdims=True)).astype(np.float32)
    source = rng.choice(2000, 300, replace=False)
    queries = docs[source] + 0.1 * rng.normal(size=(300, 64)).astype(np.float32)
    queries = (queries / np.linalg.norm(queries, axis=1, keepdims=True)).astype(np.float32)
    doc_ids, qids = [f"d{i}" for i in range(2000)], [f"q{i}" for i in range(300)]
    qrels = {q: {doc_ids[s]: 1, doc_ids[(s + 40) % 2000]: 1} for q, s in zip(qids, source)}
    shards = []
    for k, rows in enumerate(np.array_split(np.arange(2000), 4)):
        shards.append(tmp_path / f"shard-{k}.parquet")
        write_embeddings(shards[-1], [doc_ids[i] for i in rows], docs[rows])
    write_embeddings(tmp_path / "queries.parquet", qids, queries, {"query_set": ["test"] * 300})
    search_collection(tmp_path / "queries.parquet", shards, ["test"], 100, False, tmp_path / "runs", "t", "faiss-cpu")
    run16 = read_run(tmp_path / "runs" / "test.trec")
    exact = queries @ docs.T  # float32 vectors, float32 scores
    run32 = {}
    for qi, qid in enumerate(qids):
        order = sorted(sorted(range(2000), key=lambda d: doc_ids[d], reverse=True), key=lambda d: -exact[qi, d])[:100]
        run32[qid] = {doc_ids[d]: float(exact[qi, d]) for d in order}
        got = [int(d[1:]) for d in run16[qid]]
        assert np.abs(exact[qi, got] - exact[qi, order]).max() <= 2e-3  # swaps only within fp16 error
    m32, m16 = evaluate(run32, qrels)["aggregate"], evaluate(run16, qrels)["aggregate"]
    for measure in ("ndcg_cut_10", "mrr_10", "recall_100"):
        assert abs(m32[measure] - m16[measure]) <= 0.001, (measure, m32[measure], m16[measure])
    assert 0.2 < m32["ndcg_cut_10"] < 0.99  # a task neither trivial nor hopeless
