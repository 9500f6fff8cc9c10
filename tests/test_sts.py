"""Sentence similarity: STS sources (MTEB's layout, local stand-ins), the Spearman score checked against
scipy and MTEB's own scoring, per-pair values for significance, and encoding through the query path."""

import gzip
import json

import numpy as np
import pytest
import scipy.stats
from workflow_helpers import encoding_section

from llm_retrieval import sts
from llm_retrieval.data.canonical import DataError
from llm_retrieval.data.sts import PAIRS_FILE, mteb_revision, prepare_mteb_sts, prepare_sts_local, read_pairs
from llm_retrieval.embeddings import write_embeddings

# Rows as mteb/sts12-sts stores them (test.jsonl.gz: split, sentence1, sentence2, score on 0-5).
PAIRS = [
    {"split": "test", "sentence1": "A man is playing a guitar.", "sentence2": "A man plays the guitar.", "score": 4.8},
    {"split": "test", "sentence1": "A woman is slicing an onion.", "sentence2": "A woman cuts an onion.", "score": 4.2},
    {"split": "test", "sentence1": "A dog runs in the park.", "sentence2": "A cat sleeps on a sofa.", "score": 0.4},
    {"split": "test", "sentence1": "Kids play football.", "sentence2": "Children are playing soccer.", "score": 4.2},
    {"split": "test", "sentence1": "The stock market fell.", "sentence2": "A child eats an apple.", "score": 0.0},
    {"split": "test", "sentence1": "A plane is taking off.", "sentence2": "An airplane departs.", "score": 3.6},
]


def _write_jsonl(path, rows, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = "".join(json.dumps(r) + "\n" for r in rows)
    if gz:
        with gzip.open(path, "wt", encoding="utf-8") as out:
            out.write(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def _tied(rng, n):
    return rng.integers(0, 6, size=n).astype(float), rng.normal(size=n).round(1)


def test_spearman_and_pearson_equal_scipys_with_ties():
    rng = np.random.default_rng(1)
    for n in (5, 50, 800):
        gold, predicted = _tied(rng, n)
        assert sts.spearman(gold, predicted) == pytest.approx(scipy.stats.spearmanr(gold, predicted)[0], abs=1e-12)
        assert sts.pearson(gold, predicted) == pytest.approx(scipy.stats.pearsonr(gold, predicted)[0], abs=1e-12)
        assert np.array_equal(sts.ranks(predicted), scipy.stats.rankdata(predicted))


def test_scores_equal_mtebs_own_sts_scoring_on_the_same_embeddings():
    mteb = pytest.importorskip("mteb")
    from sklearn.metrics.pairwise import paired_cosine_distances

    rng = np.random.default_rng(2)
    first, second = rng.normal(size=(40, 8)), rng.normal(size=(40, 8))
    gold = rng.integers(0, 6, size=40).astype(float)
    task = mteb.get_task("STS12")
    cosine = 1 - paired_cosine_distances(first, second)  # AnySTSEvaluator's cosine_scores
    theirs = task._calculate_scores(
        {
            "cosine_scores": cosine.tolist(),
            "manhattan_distances": cosine.tolist(),
            "euclidean_distances": cosine.tolist(),
            "similarity_scores": None,
        },
        [task._normalize(g) for g in gold],
    )
    ours = sts.score_pairs([f"p{i}" for i in range(40)], gold, first, second)
    assert ours["aggregate"]["cosine_spearman"] == pytest.approx(theirs["cosine_spearman"], abs=1e-9)
    assert ours["aggregate"]["cosine_pearson"] == pytest.approx(theirs["cosine_pearson"], abs=1e-9)
    assert task.metadata.main_score == "cosine_spearman"


def test_mteb_layout_read_offline_through_the_hub_path_with_mtebs_pinned_revision(tmp_path):
    root = tmp_path / "mirror"
    _write_jsonl(root / "sts12-sts" / "test.jsonl.gz", PAIRS, gz=True)
    manifest = prepare_mteb_sts(
        {"type": "mteb_sts", "name": "sts12-sts", "local_root": str(root)},
        ["test"],
        tmp_path / "out",
        tmp_path / "work",
    )
    pairs = read_pairs(tmp_path / "out" / PAIRS_FILE, "test").to_pydict()
    assert pairs["sentence1"] == [p["sentence1"] for p in PAIRS] and pairs["score"] == [p["score"] for p in PAIRS]
    assert manifest["counts"]["pairs"] == {"test": 6} and manifest["provenance"]["datasets"]
    assert mteb_revision({"name": "sts12-sts"}) == "a0d554a64d88156834ff5ae9920b964011b16384"
    assert mteb_revision({"name": "sts12-sts", "revision": "abc"}) == "abc"


@pytest.mark.parametrize(
    "row, problem",
    [
        ({"sentence1": "a", "score": 1.0}, r"row 2: missing field\(s\) \['sentence2'\]"),
        ({"sentence1": "a", "sentence2": "b", "score": "high"}, r"row 2: score 'high' is not a finite number"),
    ],
)
def test_a_bad_pair_is_a_named_error_with_file_and_row(tmp_path, row, problem):
    path = _write_jsonl(tmp_path / "src" / "test.jsonl", [PAIRS[0], row])
    with pytest.raises(DataError, match=rf"{path}: {problem}"):
        prepare_sts_local({"type": "sts_local", "path": str(path.parent)}, ["test"], tmp_path / "out", tmp_path)
    assert not (tmp_path / "out" / PAIRS_FILE).exists()


def test_pairs_whose_correlation_is_undefined_are_refused(tmp_path):
    same = [{**p, "score": 2.0} for p in PAIRS]
    path = _write_jsonl(tmp_path / "src" / "test.jsonl", same)
    with pytest.raises(DataError, match="every gold score is 2.0; Spearman is undefined"):
        prepare_sts_local({"type": "sts_local", "path": str(path.parent)}, ["test"], tmp_path / "out", tmp_path)
    _write_jsonl(path, [{**p, "id": "x"} for p in PAIRS])
    with pytest.raises(DataError, match="duplicate pair id"):
        prepare_sts_local({"type": "sts_local", "path": str(path.parent)}, ["test"], tmp_path / "out", tmp_path)


def _embedded(tmp_path, vectors1, vectors2):
    folder = tmp_path / "coll"
    _write_jsonl(tmp_path / "src" / "test.jsonl", PAIRS)
    prepare_sts_local({"type": "sts_local", "path": str(tmp_path / "src")}, ["test"], folder, tmp_path)
    ids = [str(i) for i in range(1, len(PAIRS) + 1)]
    write_embeddings(
        tmp_path / "sentences.parquet",
        ids + ids,
        np.vstack([vectors1, vectors2]),
        {"query_set": ["test"] * 2 * len(ids), "side": ["sentence1"] * len(ids) + ["sentence2"] * len(ids)},
        dtype="float32",
    )
    return folder / PAIRS_FILE, tmp_path / "sentences.parquet"


def test_metrics_keep_every_pair_and_equal_scipy_on_the_cosines(tmp_path):
    rng = np.random.default_rng(3)
    first, second = rng.normal(size=(6, 4)).astype(np.float32), rng.normal(size=(6, 4)).astype(np.float32)
    pairs, sentences = _embedded(tmp_path, first, second)
    metrics = sts.evaluate_sts(pairs, sentences, "test", tmp_path / "m.json")
    cos = (first * second).sum(1) / np.linalg.norm(first, axis=1) / np.linalg.norm(second, axis=1)
    expected = scipy.stats.spearmanr([p["score"] for p in PAIRS], cos)[0]
    assert metrics["aggregate"]["cosine_spearman"] == pytest.approx(expected, abs=1e-6)
    assert json.loads((tmp_path / "m.json").read_text()) == metrics
    ids, gold, cosines = sts.per_pair_arrays(metrics)
    assert len(ids) == 6 and gold.tolist() == [p["score"] for p in PAIRS] and cosines == pytest.approx(cos, abs=1e-6)


def test_paired_bootstrap_finds_no_difference_between_equal_systems_and_one_between_distant_ones():
    rng = np.random.default_rng(4)
    gold = rng.uniform(0, 5, size=300)
    good, noisy = gold + rng.normal(scale=0.5, size=300), rng.normal(size=300)
    assert sts.paired_bootstrap_pvalue([(gold, good)], [(gold, good)], resamples=200) == 1.0
    assert sts.paired_bootstrap_pvalue([(gold, good)], [(gold, noisy)], resamples=200) < 0.01
    low, high = sts.bootstrap_ci([(gold, good)], resamples=200)
    assert low < sts.spearman(gold, good) < high
    two = [(gold, good), (gold[:100], noisy[:100])]  # a row or Avg over two STS sets: the mean correlation
    low, high = sts.bootstrap_ci(two, resamples=200)
    assert low < (sts.spearman(gold, good) + sts.spearman(gold[:100], noisy[:100])) / 2 < high


def test_both_sentences_are_encoded_as_queries_are(tiny_backbones, tmp_path):
    from llm_retrieval.embeddings import read_column, read_embeddings
    from llm_retrieval.encoder import Encoder, EncoderSpec

    encoding = encoding_section(
        {
            "prompts": {"query": 'Q: "{text}"', "passage": 'P: "{text}"', "assistant_prefill": 'W: "'},
            "normalize": True,
            "dtype": "float32",
            "batch_tokens": 256,
            "max_text_tokens": {"query": 16, "passage": 24},
        }
    )
    _write_jsonl(tmp_path / "src" / "test.jsonl", PAIRS)
    prepare_sts_local({"type": "sts_local", "path": str(tmp_path / "src")}, ["test"], tmp_path / "coll", tmp_path)
    spec = EncoderSpec(tiny_backbones["qwen2"], encoding)
    assert sts.encode_sentences(tmp_path / "coll" / PAIRS_FILE, ["test"], tmp_path / "s.parquet", spec, "cpu") == 12
    _, vectors = read_embeddings(tmp_path / "s.parquet")
    sides = read_column(tmp_path / "s.parquet", "side")
    direct = Encoder(spec, "cpu").encode("query", [PAIRS[2]["sentence2"]])
    assert vectors[sides.index("sentence2") + 2] == pytest.approx(direct[0], abs=1e-5)
    metrics = sts.evaluate_sts(tmp_path / "coll" / PAIRS_FILE, tmp_path / "s.parquet", "test", tmp_path / "m.json")
    assert -1 <= metrics["aggregate"]["cosine_spearman"] <= 1 and metrics["num_pairs"] == 6


def _study_with_sts(measure):
    from pathlib import Path

    import yaml
    from snakemake.utils import validate

    root = Path(__file__).resolve().parents[1]
    config = yaml.safe_load((root / "config/demo.yaml").read_text())
    config["collections"]["sts12"] = {
        "label": "STS12",
        "table": "sts",
        "query_sets": {"test": {}},
        "source": {"type": "mteb_sts", "name": "sts12-sts"},
    }
    config["settings"]["zeroshot"]["collections"].append("sts12")
    config["tables"]["sts"] = {"title": "STS", "setting": "zeroshot", "measure": measure}
    validate(config, str(root / "workflow/schemas/config.schema.yaml"))
    return config


def test_an_sts_collection_is_scored_per_backbone_without_bm25_and_its_table_measure_checked():
    from llm_retrieval.pins import hub_refs
    from llm_retrieval.study import BM25, ConfigError, Study

    config = _study_with_sts("cosine_spearman")
    study = Study(config)
    units = [u for u in study.eval_units() if u.collection == "sts12"]
    assert units and BM25 not in {u.retriever for u in units}
    assert study.collections_of_kind("zeroshot", "sts") == ["sts12"]
    assert "sts12" not in study.collections_of_kind("zeroshot", "retrieval")
    ref = next(r for r in hub_refs(config) if r.repo == "mteb/sts12-sts")
    assert ref.pinned and ref.revision == "a0d554a64d88156834ff5ae9920b964011b16384"
    with pytest.raises(
        ConfigError,
        match=r"tables\.sts\.measure: measure 'ndcg_cut_10' is not computed for sts "
        r"collections \(known measures, sts: cosine_spearman, cosine_pearson\)",
    ):
        Study(_study_with_sts("ndcg_cut_10"))


@pytest.fixture(scope="module")
def sts_workdir(tmp_path_factory):
    """The mini study with a local STS set on its zero-shot setting (a table of its own)."""
    from pathlib import Path

    import yaml
    from workflow_helpers import scratch_copy

    workdir = scratch_copy(tmp_path_factory.mktemp("sts-study"))
    _write_jsonl(Path(workdir) / "sts-src" / "test.jsonl", PAIRS)
    config = yaml.safe_load((Path(workdir) / "config" / "mini.yaml").read_text())
    config["collections"]["sts-mini"] = {
        "label": "STS-mini",
        "table": "sts",
        "query_sets": {"test": {}},
        "source": {"type": "sts_local", "path": "sts-src"},
    }
    config["settings"]["zeroshot"]["collections"].append("sts-mini")
    config["tables"]["sts"] = {"title": "Sentence similarity", "setting": "zeroshot", "measure": "cosine_spearman"}
    (Path(workdir) / "config" / "mini-sts.yaml").write_text(yaml.safe_dump(config))
    return workdir


def test_the_dag_plans_sts_pairs_sentences_and_scores_without_bm25_or_a_corpus(sts_workdir):
    from workflow_helpers import planned_jobs, snakemake

    jobs = planned_jobs(snakemake(sts_workdir, "-n", "--configfile", "config/mini-sts.yaml").stdout)
    on_sts = [(rule, w) for rule, w in jobs if w.get("collection") == "sts-mini"]
    rules = {rule for rule, _ in on_sts}
    assert rules == {"prepare_sts_pairs", "encode_sts_sentences", "evaluate_sts"}
    assert {w["backbone"] for rule, w in on_sts if rule == "evaluate_sts"} == {"base", "vl-i"}


@pytest.mark.slow
def test_an_sts_set_is_scored_end_to_end_by_its_own_rules(sts_workdir):
    from pathlib import Path

    from workflow_helpers import snakemake

    target = "results/metrics/zeroshot/base/sts-mini/test.json"
    snakemake(sts_workdir, target, "--cores", "2", "--configfile", "config/mini-sts.yaml")
    metrics = json.loads((Path(sts_workdir) / target).read_text())
    _, gold, cos = sts.per_pair_arrays(metrics)
    assert metrics["kind"] == "sts" and metrics["num_pairs"] == len(PAIRS)
    assert metrics["aggregate"]["cosine_spearman"] == pytest.approx(scipy.stats.spearmanr(gold, cos)[0], abs=1e-9)
    snakemake(sts_workdir, "results/tables/sts.json", "--cores", "2", "--configfile", "config/mini-sts.yaml")
    table = json.loads((Path(sts_workdir) / "results/tables/sts.json").read_text())
    cells = {(c["retriever"], c["item"]): c for c in table["cells"]}
    assert set(table["retrievers"]) == {"Base", "VL-I"} and table["anchor"] == "Base"  # no BM25 column
    base = cells[("Base", "STS-mini")]
    assert base["ours"] == pytest.approx(metrics["aggregate"]["cosine_spearman"]) and base["queries"] == len(PAIRS)
    assert base["ci"][0] <= base["ours"] <= base["ci"][1] and 0 < cells[("VL-I", "STS-mini")]["p"] <= 1
    for rule in ("prepare_sts_pairs", "encode_sts_sentences", "evaluate_sts"):
        assert list((Path(sts_workdir) / "results" / "logs" / rule).rglob("*.log")), rule
        assert list((Path(sts_workdir) / "results" / "benchmarks" / rule).rglob("*.tsv")), rule
