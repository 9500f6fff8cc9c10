"""The DAG: paper dry-run job counts, config errors, and the demo slice end to end."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import pytest
import yaml
from workflow_helpers import ROOT, job_counts, load_study, planned_jobs, scratch_copy, snakemake

from llm_retrieval import axes
from llm_retrieval.study import Study


def expected_counts(study: Study) -> Counter:
    """Jobs per rule that a fresh run of ``study`` needs, derived from its config."""
    config = study.config
    evaluated = [c for s in study.settings.values() for c in s["collections"]]
    training = config.get("training", {})
    mined = (
        [training["data"]["collection"]]
        if "supervised" in study.settings and training["data"]["type"] == "bm25_mined"
        else []
    )
    settings = study.dense_settings()  # the settings and their axis variants
    encodings = sum(len(study.backbones_of(s)) * len(study.collections_of(s)) for s in settings)
    # A setting searching another's corpus encoding (an instruction variant: Study.corpus_setting) encodes queries only.
    owned = [(s, c) for s in settings for c in study.collections_of(s) if study.corpus_setting(s, c) == s]
    corpora = sum(len(study.backbones_of(s)) for s, _ in owned)
    extra_shards = sum(len(study.backbones_of(s)) * (study.corpus_shards(c, s) - 1) for s, c in owned)
    dense_runs = sum(
        len(study.backbones_of(s)) * sum(len(study.eval_query_sets(c)) for c in study.collections_of(s))
        for s in settings
    )
    bm25 = sum(len(study.eval_query_sets(c)) for c in dict.fromkeys(evaluated))
    counts = Counter(
        {
            "prepare_collection": len(study.used_collections()),
            "resolve_backbone": len(study.used_backbones()),
            "bm25_index": len(set(evaluated) | set(mined)),
            "bm25_search": bm25,
            "encode_queries_and_first_shard": corpora,
            "encode_queries_only": encodings - corpora,
            "encode_corpus_shard": extra_shards,
            "dense_search": encodings,  # one search job per (setting, backbone, collection): all its query sets
            "evaluate_run": dense_runs + bm25,
            "comparison_table": len(config["tables"]),
            "report_figures": len(config["tables"]),
            "cost_table": 1,
            "report_summary": 1,
            "train_lora": len(study.backbones_of("supervised")),
            "training_groups": 1 if "supervised" in study.settings else 0,
            "axis_table": len(axes.axis_tables(config)),
        }
    )
    if any(c["source"]["type"] == "stdlib_codesearch" for c in study.collections.values()):
        counts["build_stdlib_codesearch"] = 1
    if any(
        c["source"]["type"] == "beir_local" and "synth-text" in c["source"]["path"] for c in study.collections.values()
    ):
        counts["build_synthetic_text"] = 1
    return +counts


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return scratch_copy(tmp_path_factory.mktemp("study"))


def test_paper_dry_run_plans_every_backbone_dataset_setting(workdir):
    start = time.monotonic()
    proc = snakemake(workdir, "-n")
    elapsed = time.monotonic() - start
    jobs = planned_jobs(proc.stdout + proc.stderr)
    study = load_study(ROOT / "config/config.yaml")
    assert job_counts(jobs) == expected_counts(study)
    planned = {(w["setting"], w["backbone"], w["collection"]) for rule, w in jobs if rule == "dense_search"}
    wanted = {(s, b, c) for s in study.settings for b in study.backbones_of(s) for c in study.collections_of(s)}
    assert planned == wanted
    assert elapsed < 30, f"dry run took {elapsed:.1f} s"


def test_scaling_dry_run_plans_every_size(workdir):
    start = time.monotonic()
    proc = snakemake(workdir, "-n", "--configfile", "config/scaling.yaml")
    elapsed = time.monotonic() - start
    jobs = planned_jobs(proc.stdout + proc.stderr)
    study = load_study(ROOT / "config/scaling.yaml")
    assert job_counts(jobs) == expected_counts(study)
    for rule in ("encode_queries_and_first_shard", "train_lora"):  # every size, zero-shot and supervised
        planned = {w["backbone"] for r, w in jobs if r == rule}
        assert planned == set(study.backbones) and len(planned) == 10, rule  # Qwen2.5 0.5B-14B, base + instruct
    assert elapsed < 20, f"dry run took {elapsed:.1f} s"


def test_paper_config_matches_the_protocol():
    study = load_study(ROOT / "config/config.yaml")
    labels = {b["label"] for b in study.backbones.values()}
    assert labels == {"Base", "Instruct", "Coder", "Coder-I", "Math", "Math-I", "Distill", "VL-I"}
    rows = {(study.collection(c)["table"], study.collection(c)["label"]) for c in study.collections_of("zeroshot")}
    assert Counter(table for table, _ in rows) == {"beir": 6, "coir": 10}
    per_language = [c for c in study.collections_of("zeroshot") if "language" in study.collection(c)["source"]]
    assert len(per_language) == 12  # CodeSearchNet and -CCR, six languages each, averaged per row
    assert study.collections_of("supervised") == ["msmarco"]
    assert set(study.eval_query_sets("msmarco")) == {"dev", "dl19", "dl20"}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c.update(unknown_key=1), "unknown_key"),
        (
            lambda c: c["settings"]["zeroshot"]["backbones"].append("llama-3"),
            "settings.zeroshot.backbones: unknown backbone 'llama-3'",
        ),
        (lambda c: c["backbones"]["base"].pop("label"), "'label' is a required property"),
        (lambda c: c["collections"]["fiqa"].update(top_k="many"), "'many' is not of type 'integer'"),
    ],
)
def test_bad_config_stops_the_dag_build_naming_the_key(workdir, edit, message):
    config = yaml.safe_load(Path(ROOT / "config/config.yaml").read_text())
    edit(config)
    (workdir / "bad.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, "-n", "--configfile", "bad.yaml", check=False)
    assert proc.returncode != 0
    assert message in proc.stdout + proc.stderr


@pytest.mark.slow
def test_mini_study_runs_every_rule_and_writes_the_tables(finished_mini):
    study = load_study(finished_mini / "config/mini.yaml")
    for table in study.config["tables"]:
        lines = (finished_mini / f"results/tables/{table}.md").read_text().splitlines()
        assert any(line.startswith("| BM25 |") or "| BM25 |" in line for line in lines)
    beir = (finished_mini / "results/tables/beir.csv").read_text().splitlines()
    header, row = beir[0].split(","), beir[1].split(",")
    bm25 = float(row[header.index("BM25")])
    assert 0.5 < bm25 <= 1.0  # the generated text set is built to be lexically solvable
    log_root = finished_mini / "results/logs"
    logged_rules = {p.relative_to(log_root).parts[0].removesuffix(".log") for p in log_root.rglob("*.log")}
    assert logged_rules >= set(expected_counts(study))  # every rule ran, each with its own log
    # the learning curve: the adapter exported at step 2 evaluated as its own setting, then the final one
    curve = (finished_mini / "results/tables/axes/supervised.steps.csv").read_text().splitlines()
    assert curve[0] == "recipe,backbone,collection,query_set,steps,mrr_10,ndcg_cut_10"  # axis tables name the recipe
    assert [row.split(",")[0] for row in curve[1:]] == ["default", "default"]
    assert [row.split(",")[4] for row in curve[1:]] == ["2", "4"]
    assert (finished_mini / "results/tables/axes/supervised.steps.svg").read_text().lstrip().startswith("<?xml")


@pytest.mark.slow
def test_second_run_is_a_no_op(finished_mini):
    proc = snakemake(finished_mini, "-n", "--configfile", "config/mini.yaml")
    assert job_counts(planned_jobs(proc.stdout + proc.stderr)) == Counter()
    assert "Nothing to be done" in proc.stdout + proc.stderr


@pytest.mark.slow
def test_deleting_one_shard_reruns_only_it_and_its_dependents(finished_mini):
    shard = finished_mini / "results/embeddings/zeroshot/base/synth-text/corpus/shard-1.parquet"
    shard.unlink()
    proc = snakemake(finished_mini, "-n", "--configfile", "config/mini.yaml")
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert job_counts(jobs) == Counter(
        encode_corpus_shard=1,
        dense_search=1,
        evaluate_run=1,
        comparison_table=1,
        report_figures=1,
        cost_table=1,
        report_summary=1,
    )
    assert all(w.get("backbone", "base") == "base" for _, w in jobs)
    snakemake(finished_mini, "--cores", "2", "--configfile", "config/mini.yaml")
    assert shard.exists()


@pytest.mark.slow
def test_deleting_the_first_shard_reruns_its_job_with_the_queries_and_their_dependents(finished_mini):
    # Shard 0 comes from the job that also encodes the queries (one model load for both).
    shard = finished_mini / "results/embeddings/zeroshot/base/synth-text/corpus/shard-0.parquet"
    aside = shard.with_name("aside.parquet")
    shard.rename(aside)
    try:
        proc = snakemake(finished_mini, "-n", "--configfile", "config/mini.yaml")
    finally:
        aside.rename(shard)  # the same file, mtime kept: the finished study stays complete
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert job_counts(jobs) == Counter(
        encode_queries_and_first_shard=1,
        dense_search=1,
        evaluate_run=1,
        comparison_table=1,
        report_figures=1,
        cost_table=1,
        report_summary=1,
    )
    planned = {
        (w.get("backbone", w.get("retriever")), w["collection"])
        for r, w in jobs
        if r not in ("comparison_table", "report_figures", "cost_table", "report_summary", "all")
    }
    assert planned == {("base", "synth-text")}


@pytest.mark.slow
def test_single_backbone_rerun_plans_that_backbone_and_the_tables_only(finished_mini):
    # The README's command for rerunning one backbone.
    proc = snakemake(
        finished_mini, "-n", "--configfile", "config/mini.yaml", "--forcerun", "results/models/vl-i/backbone.json"
    )
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert {
        w.get("backbone") or w.get("retriever")
        for rule, w in jobs
        if rule not in ("comparison_table", "report_figures", "cost_table", "report_summary", "all")
    } == {"vl-i"}
    study = load_study(finished_mini / "config/mini.yaml")
    vl_encodings = sum(len(study.collections_of(s)) for s in study.settings if "vl-i" in study.backbones_of(s))
    counts = job_counts(jobs)
    assert counts["resolve_backbone"] == 1
    assert counts["encode_queries_and_first_shard"] == vl_encodings
    assert counts["encode_corpus_shard"] == sum(
        study.corpus_shards(c, s) - 1
        for s in study.settings
        if "vl-i" in study.backbones_of(s)
        for c in study.collections_of(s)
    )
    assert counts["bm25_search"] == counts["prepare_collection"] == 0
    assert counts["comparison_table"] == 2  # the zero-shot tables vl-i appears in


@pytest.mark.slow
def test_fp16_shards_rank_as_float32_apart_from_ties_within_fp16_error(finished_mini, monkeypatch):
    """The mini study's synth-text run (fp16 shards) against an exact float32 search of the same encoder's
    vectors: hits may swap only where their float32 scores differ by less than fp16 rounding."""
    import json

    import numpy as np

    from llm_retrieval.data.canonical import CORPUS_SCHEMA, read_queries, read_table
    from llm_retrieval.embeddings import read_embeddings
    from llm_retrieval.encoder import Encoder, EncoderSpec
    from llm_retrieval.runs import read_run

    monkeypatch.chdir(finished_mini)  # backbone.json holds paths relative to the study folder
    results = finished_mini / "results"
    study = load_study(finished_mini / "config/mini.yaml")
    collection = study.collection("synth-text")
    backbone = json.loads((results / "models/base/backbone.json").read_text())
    encoder = Encoder(EncoderSpec(backbone, study.config["encoding"]), "cpu")
    corpus = read_table(results / "data/synth-text/corpus.parquet", CORPUS_SCHEMA).to_pydict()
    texts = [f"{t} {x}" if collection["use_title"] and t else x for t, x in zip(corpus["title"], corpus["text"])]
    docs = encoder.encode("passage", texts)
    queries = read_queries(results / "data/synth-text/queries.parquet", "test")
    query_vectors = encoder.encode("query", list(queries.values()))
    stored = np.concatenate(
        [
            read_embeddings(results / f"embeddings/zeroshot/base/synth-text/corpus/shard-{i}.parquet")[1]
            for i in range(study.corpus_shards("synth-text", "zeroshot"))
        ]
    )
    np.testing.assert_allclose(stored, docs, atol=2e-3)  # the workflow's shards hold these vectors in fp16

    exact = query_vectors @ docs.T
    top_k = collection["top_k"]
    run16 = read_run(results / "runs/zeroshot/base/synth-text/test.trec")
    index = {doc: i for i, doc in enumerate(corpus["id"])}
    for qi, qid in enumerate(queries):
        scores = exact[qi].copy()
        if collection["drop_self_hits"] and qid in index:
            scores[index[qid]] = -np.inf
        order = sorted(range(len(scores)), key=lambda d: corpus["id"][d], reverse=True)
        order = sorted(order, key=lambda d: -scores[d])[:top_k]  # trec_eval's order: score desc, doc id desc
        got = list(run16[qid])
        assert len(got) == len(order)
        gaps = np.abs(scores[[index[d] for d in got]] - scores[order])
        assert gaps.max() <= 2e-3, (qid, gaps.max())  # a different doc only where scores agree to fp16 precision
