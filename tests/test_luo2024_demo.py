"""The second study's offline slice (config/luo2024-demo.yaml, docs/luo2024.md "The offline slice"): every
dimension of config/luo2024.yaml at toy scale, planned, then run end to end into its tables and report. Its run
also stands for config/recipes.yaml's: single- vs multi-task and the instruction-trained retriever with seen
(id) and unseen (ood) instructions (docs/recipes.md)."""

from __future__ import annotations

import csv
import html
import json

import pytest
import yaml
from workflow_helpers import ROOT, load_study, planned_jobs, scratch_copy, snakemake

from llm_retrieval import axes

CONFIG = ROOT / "config/luo2024-demo.yaml"
FULL = ROOT / "config/luo2024.yaml"
QWEN, BERT = "qwen1.5-0.5b", "bert-large"
RECIPES = ["instructed", "multitask", "single-nli"]


def _read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as stream:
        return list(csv.DictReader(stream))


# --- the config and its plan (fast) -----------------------------------------------------------------


def test_the_slice_has_the_full_studys_dimensions_on_tiny_builds_of_two_families():
    demo, full = load_study(CONFIG), load_study(FULL)
    assert set(demo.config["settings"]["supervised"]["axes"]) == set(full.config["settings"]["supervised"]["axes"])
    backbones = demo.config["backbones"]
    assert all("build" in b for b in backbones.values()) and len({b["architecture"] for b in backbones.values()}) >= 2
    # Each tiny build carries the label and training method of a study backbone of its family.
    study_backbones = {b["label"]: b for b in full.config["backbones"].values()}
    for spec in backbones.values():
        stands_for = study_backbones[spec["label"]]
        assert spec["architecture"] == stands_for["architecture"]
        assert spec.get("training", {}).get("method") == stands_for.get("training", {}).get("method")
    sources = {t: s["source"]["type"] for t, s in demo.config["training_tasks"].items()}
    assert "stdlib_nli" in sources.values()
    mixture = set(demo.config["recipes"]["multitask"]["tasks"])
    singles = [set(r["tasks"]) for name, r in demo.config["recipes"].items() if name.startswith("single-")]
    assert mixture == {"default"} | set(sources) and all(len(s) == 1 for s in singles)
    assert {"stdlib_sts"} == {demo.collection(c)["source"]["type"] for c in demo.table_collections("sts")}


@pytest.fixture(scope="module")
def plan(tmp_path_factory):
    work = scratch_copy(tmp_path_factory.mktemp("luo-demo-plan"))
    proc = snakemake(work, "-n", "--configfile", "config/luo2024-demo.yaml")
    return planned_jobs(proc.stdout + proc.stderr)


def test_the_dry_run_plans_every_dimension_of_the_slice(plan):
    trained = {(w["recipe"], w["backbone"]) for rule, w in plan if rule == "train_lora"}
    assert trained == {("default", QWEN), ("default", BERT)} | {(r, QWEN) for r in RECIPES}
    assert sorted(w["task"] for rule, w in plan if rule == "training_groups") == ["c2t", "default", "nli"]
    runs = {(w["run_setting"], w["retriever"], w["collection"]) for rule, w in plan if rule == "evaluate_run"}
    for backbone in (QWEN, BERT):  # in-domain, zero-shot transfer, lengthy at the setting, data efficiency
        for collection in ("stdlib-t2c", "stdlib-c2t", "stdlib-modules"):
            assert ("supervised", backbone, collection) in runs
        assert ("supervised.steps-20", backbone, "stdlib-t2c") in runs
    lengths = {s for s, b, c in runs if c == "stdlib-modules" and s.startswith("supervised.passage_tokens-")}
    assert lengths == {"supervised.passage_tokens-32", "supervised.passage_tokens-512"}
    assert {b for s, b, _ in runs if s in lengths} == {QWEN}  # BERT's 512 positions: the setting's length only
    for instructions in ("id", "ood"):
        assert (f"supervised.recipe-instructed.instruction-{instructions}", QWEN, "stdlib-t2c") in runs
    # id and ood share one passage instruction: ood encodes its queries and searches id's corpus encoding
    assert [w["setting"] for rule, w in plan if rule == "encode_queries_only"] == [
        "supervised.recipe-instructed.instruction-ood"
    ]
    for recipe in RECIPES:
        assert (f"supervised.recipe-{recipe}", QWEN, "stdlib-t2c") in runs
    sts = {(w["setting"], w["backbone"]) for rule, w in plan if rule == "evaluate_sts"}
    assert {("supervised", QWEN), ("supervised", BERT), ("supervised.recipe-multitask", QWEN)} <= sts
    assert ("supervised.recipe-single-nli", QWEN) in sts
    study = load_study(CONFIG)
    assert {w["table"] for rule, w in plan if rule == "comparison_table"} == set(study.config["tables"])
    planned_axes = {(w["base"], w["axis"]) for rule, w in plan if rule == "axis_table"}
    assert planned_axes == {("supervised", a) for a in ("steps", "passage_tokens", "recipe", "instruction")}


# --- end to end (slow) ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slice_run(tmp_path_factory):
    work = scratch_copy(tmp_path_factory.mktemp("luo-demo"))
    snakemake(work, "--cores", "2", "--configfile", "config/luo2024-demo.yaml", timeout=1800)
    return work


def _labels(study) -> dict[str, str]:
    return {name: spec["label"] for name, spec in study.config["backbones"].items()}


@pytest.mark.slow
def test_the_slice_tabulates_in_domain_transfer_and_lengthy_retrieval_per_backbone(slice_run):
    study, tables = load_study(CONFIG), slice_run / "results/tables"
    labels = _labels(study)
    indomain = {row["backbone"]: row for row in _read_csv(tables / "indomain.csv")}
    assert set(indomain) == {"BM25", labels[QWEN], labels[BERT]}
    for row in indomain.values():
        for column in ("test_ndcg10", "test_mrr10", "test_r10", "test_r1000"):
            assert 0 <= float(row[column]) <= 1
    assert all(float(row["test_r1000"]) >= float(row["test_r10"]) for row in indomain.values())
    transfer = {row["dataset"]: row for row in _read_csv(tables / "transfer.csv")}
    assert {"Code2Docstring", "Docstring2Module"} <= set(transfer)
    assert all(0 <= float(transfer["Code2Docstring"][labels[b]]) <= 1 for b in (QWEN, BERT))
    long = {row["dataset"]: row for row in _read_csv(tables / "long.csv")}
    assert {"BM25", labels[QWEN], labels[BERT]} <= set(long["Docstring2Module"])
    curve = _read_csv(tables / "axes/supervised.passage_tokens.csv")
    assert [(r["backbone"], r["passage_tokens"]) for r in curve] == [(labels[QWEN], n) for n in ("32", "128", "512")]
    steps = _read_csv(tables / "axes/supervised.steps.csv")
    final = str(study.config["training"]["max_steps"])
    assert {(r["backbone"], r["steps"]) for r in steps} == {(labels[b], s) for b in (QWEN, BERT) for s in ("20", final)}


@pytest.mark.slow
def test_the_slice_tabulates_instructions_seen_and_unseen_and_every_recipe_with_sts_by_spearman(slice_run):
    study, tables = load_study(CONFIG), slice_run / "results/tables"
    labels = _labels(study)
    instruction = {row["dataset"]: row for row in _read_csv(tables / "instruction.csv")}
    assert 0 <= float(instruction["Docstring2Code"][labels[QWEN]]) <= 1
    seen_unseen = _read_csv(tables / "axes/supervised.instruction.csv")
    assert [(r["recipe"], r["instruction"]) for r in seen_unseen] == [("instructed", i) for i in ("off", "id", "ood")]
    recipes = _read_csv(tables / "axes/supervised.recipe.csv")
    assert {r["recipe"] for r in recipes} == {"default", *RECIPES}
    assert {r["collection"] for r in recipes} == {"Docstring2Code", "Stdlib-STS"}
    for row in recipes:  # each delta against the collection's single-task retriever: NLI's on the STS set
        measure = "cosine_spearman" if row["collection"] == "Stdlib-STS" else "ndcg_cut_10"
        assert -1 <= float(row[measure]) <= 1
        assert row["baseline"] == ("single-nli" if row["collection"] == "Stdlib-STS" else "default")
        if row["recipe"] == row["baseline"]:
            assert float(row[f"delta_{measure}"]) == 0
    sts = json.loads((tables / "sts.json").read_text())
    assert sts["measure"] == "cosine_spearman" and set(sts["retrievers"]) == {labels[QWEN], labels[BERT]}
    assert all(-1 <= cell["ours"] <= 1 for cell in sts["cells"])
    multi = json.loads((slice_run / f"results/train/multitask/{QWEN}/training.json").read_text())
    steps = study.config["recipes"]["multitask"]["training"]["max_steps"]
    assert multi["tasks"] == list(study.config["recipes"]["multitask"]["tasks"]) and len(multi["losses"]) == steps


@pytest.mark.slow
def test_the_slice_report_lists_every_dimension_and_says_its_models_are_random(slice_run):
    study = load_study(CONFIG)
    summary = (slice_run / "results/report/summary.md").read_text()
    for table in study.config["tables"].values():
        assert table["title"] in summary
    assert "random weights" in summary
    cost = (slice_run / "results/report/cost.md").read_text()
    assert all(f"| {recipe} |" in cost for recipe in RECIPES)
    assert "Projected GPU cost of config/luo2024.yaml" in cost  # the full study's projection, not the first study's
    for base, axis in axes.axis_tables(study.config):
        assert (slice_run / f"results/tables/axes/{base}.{axis}.svg").stat().st_size > 0
    fidelity = (slice_run / "results/report/fidelity.html").read_text()
    assert all(html.escape(table["title"]) in fidelity for table in study.config["tables"].values())


@pytest.mark.slow
def test_retraining_one_recipe_of_the_slice_replans_only_its_retriever(slice_run):
    config = yaml.safe_load(CONFIG.read_text())
    forced = f"results/train/multitask/{QWEN}/adapter"
    again = planned_jobs(
        snakemake(slice_run, "-n", "--configfile", "config/luo2024-demo.yaml", "--forcerun", forced).stdout
    )
    touched = {
        (rule, w.get("recipe") or axes.recipe_of(config, w.get("setting", "")))
        for rule, w in again
        if rule in ("train_lora", "encode_queries_and_first_shard", "encode_sts_sentences", "dense_search")
    }
    assert touched == {
        (rule, "multitask")
        for rule in ("train_lora", "encode_queries_and_first_shard", "encode_sts_sentences", "dense_search")
    }
    assert not any(rule in ("training_groups", "bm25_index", "prepare_collection") for rule, _ in again)
