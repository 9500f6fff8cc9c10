"""The second study as one config (config/luo2024.yaml): every backbone and dimension planned, its
published numbers (Table 3, the prose) beside ours in the report and on the fidelity page."""

import csv

import pytest
from workflow_helpers import ROOT, load_study, planned_jobs, scratch_copy, snakemake

from llm_retrieval.atomic import write_json
from llm_retrieval.data import toolbench
from llm_retrieval.paths import Layout
from llm_retrieval.report import fidelity, luo2024
from llm_retrieval.report.tables import build

CONFIG = ROOT / "config/luo2024.yaml"
# The study's backbones (PROTOCOL.md, Luo et al. 2024).
STUDY_HUB_IDS = [
    "google-bert/bert-base-uncased",
    "google-bert/bert-large-uncased",
    *(f"google/t5-v1_1-{size}" for size in ("base", "large", "xl", "xxl")),
    *(f"Qwen/Qwen1.5-{size}" for size in ("0.5B", "1.8B", "4B", "7B", "14B", "32B")),
    *(f"Qwen/Qwen1.5-{size}-Chat" for size in ("0.5B", "4B", "14B")),
    "meta-llama/Llama-2-7b-hf",
    "meta-llama/Llama-2-13b-hf",
    "meta-llama/Meta-Llama-3-8B",
    "meta-llama/Meta-Llama-3-8B-Instruct",
    "microsoft/phi-1_5",
    "microsoft/phi-2",
    "google/gemma-2b",
    "google/gemma-7b",
]
BEIR_13 = [
    "trec-covid",
    "nfcorpus",
    "nq",
    "hotpotqa",
    "fiqa",
    "arguana",
    "webis-touche2020",
    "dbpedia-entity",
    "scidocs",
    "fever",
    "climate-fever",
    "scifact",
    "quora",
]
TABLE_3_SETS = ["HotpotQA", "NQ", "MS MARCO", "FiQA", "NFCorpus", "SciFact"]


@pytest.fixture(scope="module")
def luo_dry_run(tmp_path_factory):
    """The dry run's output on a fresh clone: no data/ folder, so none of ToolBench's and QReCC's local
    files (docs/luo2024.md); their collections are sized by the config's estimates."""
    work = scratch_copy(tmp_path_factory.mktemp("luo2024"))
    assert not (work / "data").exists()
    proc = snakemake(work, "-n", "--configfile", "config/luo2024.yaml")
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def luo_plan(luo_dry_run):
    return planned_jobs(luo_dry_run)


def test_a_fresh_clone_plans_and_the_dry_run_names_the_missing_local_folders(luo_dry_run, luo_plan):
    study = load_study(CONFIG)
    warnings = [line for line in luo_dry_run.splitlines() if " data not found: " in line]
    toolbench, qrecc = study.collection("toolbench")["source"], study.collection("qrecc")["source"]
    expected = {
        "collections.toolbench": [toolbench["path"]],
        "collections.qrecc": [qrecc["passages"], *qrecc["turns"].values()],
    }
    for where, paths in expected.items():
        line = next((w for w in warnings if w.startswith(f"{where}: ")), None)
        assert line is not None, f"no warning for {where} in {warnings}"
        assert all(path in line for path in paths) and "size_estimate" in line and "docs/data.md" in line
    assert len(warnings) == len(expected)
    prepared = {w["collection"] for rule, w in luo_plan if rule == "prepare_collection"}
    assert {"toolbench", "qrecc"} <= prepared


def test_the_config_names_every_study_backbone_and_the_beir_13_sets_and_its_recipe():
    study = load_study(CONFIG)
    assert sorted(b["hub_id"] for b in study.backbones.values()) == sorted(STUDY_HUB_IDS)
    beir = [study.collection(c)["source"]["name"] for c in study.config["tables"]["beir13"]["collections"]]
    assert beir == BEIR_13
    training = study.config["training"]
    assert (training["global_batch"], training["group_size"] - 1, training["learning_rate"]) == (128, 7, 3e-4)
    assert (training["temperature"], training["max_length"], training["max_steps"]) == (
        0.02,
        {"query": 64, "passage": 256},
        3700,
    )


def test_the_dry_run_trains_every_backbone_and_plans_every_dimension_table(luo_plan):
    study = load_study(CONFIG)
    trained = {w["backbone"] for rule, w in luo_plan if rule == "train_lora"}
    assert trained == set(study.config["settings"]["supervised"]["backbones"])
    evaluated = {(w["run_setting"], w["retriever"], w["collection"]) for rule, w in luo_plan if rule == "evaluate_run"}
    assert {s for s, _, _ in evaluated} == {"lexical", *study.dense_settings()}
    # every dimension: each of its units is a planned evaluation
    for unit in study.eval_units():
        if study.collection_kind(unit.collection) == "retrieval":
            assert (unit.setting, unit.retriever, unit.collection) in evaluated
    steps = {(s, b) for s, b, c in evaluated if s.startswith("supervised.steps-")}
    assert {b for _, b in steps} == {"bert-large", "qwen1.5-0.5b", "llama-2-7b"}
    assert {s for s, _ in steps} == {
        "supervised.steps-100",
        "supervised.steps-200",
        "supervised.steps-500",
        "supervised.steps-1000",
        "supervised.steps-2000",
        "supervised.steps-3000",
    }
    lengths = {s for s, _, c in evaluated if c == "narrativeqa"}
    assert lengths >= {"supervised", *(f"supervised.passage_tokens-{n}" for n in (512, 1024, 2048, 4096, 8192))}
    # the multi-task dimension: the mixture and each single task trained, evaluated on their tasks
    recipes = {w.get("recipe") for rule, w in luo_plan if rule == "train_lora"}
    assert recipes >= {"instructed", "multitask", "single-toolbench", "single-qrecc", "single-nli", "single-hotpotqa"}
    for recipe, collection in [("multitask", "toolbench"), ("multitask", "qrecc"), ("single-qrecc", "qrecc")]:
        assert (f"supervised.recipe-{recipe}", "llama-2-7b", collection) in evaluated
    assert ("supervised.recipe-instructed.instruction-ood", "llama-3-8b-chat", "msmarco") in evaluated
    # NLI -> STS: the NLI-trained retrievers scored on MTEB's STS sets (their own evaluation rule)
    sts = {(w["setting"], w["backbone"], w["collection"]) for rule, w in luo_plan if rule == "evaluate_sts"}
    for setting in ("supervised", "supervised.recipe-single-nli", "supervised.recipe-multitask"):
        assert (setting, "llama-2-7b", "stsbenchmark") in sts
    tables = {w["table"] for rule, w in luo_plan if rule == "comparison_table"}
    assert tables == set(study.config["tables"])
    assert {"indomain", "beir13", "long", "instruction", "instruction_ood", "multitask_tool"} <= tables
    axis_tables = {(w["base"], w["axis"]) for rule, w in luo_plan if rule == "axis_table"}
    assert axis_tables == {("supervised", a) for a in ("steps", "passage_tokens", "recipe", "instruction")}


def test_the_derived_reference_tables_are_what_the_verbatim_published_csvs_give(tmp_path):
    written = luo2024.write_derived(out=tmp_path)
    for path in written:
        assert path.read_text() == (ROOT / "resources/reference" / path.name).read_text(), path.name
    plain = luo2024.plain_scores()
    # Table 3: BERT-large HotpotQA 0.468 with instructions, -0.046 against the run without: 0.514 without.
    assert plain["BERT-large"]["HotpotQA"] == pytest.approx(0.514)
    with open(ROOT / "resources/reference/luo2024_indomain_derived.csv", newline="") as stream:
        indomain = {r["backbone"]: r for r in csv.DictReader(stream)}
    assert indomain["Qwen1.5-32B"]["dev_mrr10"] == "0.426"  # the prose's in-domain score
    assert indomain["Qwen1.5-32B"]["dev_ndcg10"] == ""  # not published in the text


def _fake_metrics(root, study, table, value):
    for unit in study.table_units(table):
        per_query = {
            f"q{i}": {m: value(unit, i) for m in ("ndcg_cut_10", "mrr_10", "recall_10", "recall_1000")}
            for i in range(20)
        }
        aggregate = {m: sum(v[m] for v in per_query.values()) / 20 for m in per_query["q0"]}
        write_json(Layout(str(root)).metrics(unit), {"aggregate": aggregate, "per_query": per_query})


def test_the_instruction_table_is_table_3_beside_ours_and_its_fidelity_counts_every_shared_cell(tmp_path):
    study = load_study(CONFIG)
    _fake_metrics(tmp_path, study, "instruction", lambda unit, q: 0.3 + 0.01 * (q % 5))
    table = build(study, "instruction", Layout(str(tmp_path)).metrics)
    assert table.items == TABLE_3_SETS
    assert table.cell("Qwen1.5-0.5B", "HotpotQA").paper == pytest.approx(0.593)
    assert table.cell("Qwen1.5-14B-Chat", "MS MARCO").paper == pytest.approx(0.490)
    assert table.averages["Qwen1.5-4B"].paper == pytest.approx(0.525)  # the printed Avg: same six sets
    with open(ROOT / "resources/reference/luo2024_table3_instruction.csv", newline="") as stream:
        table_3_backbones = next(csv.reader(stream))[1:]
    assert sorted(label for label in table.retrievers if label != "BM25") == sorted(table_3_backbones)
    result = fidelity.fidelity(table, 0.02)
    assert result["compared_cells"] == len(table_3_backbones) * len(TABLE_3_SETS)
    assert table.not_compared == []


def test_a_table_the_study_printed_as_an_image_says_not_published_in_the_text(tmp_path):
    study = load_study(CONFIG)
    _fake_metrics(tmp_path, study, "long", lambda unit, q: 0.2)
    table = build(study, "long", Layout(str(tmp_path)).metrics)
    result = fidelity.fidelity(table, 0.02)
    assert result["compared_cells"] == 0
    assert luo2024.NOT_PUBLISHED in fidelity.to_markdown(result)


def test_the_job_preparing_a_collection_whose_local_folder_is_missing_fails_with_a_named_error(tmp_path):
    work = scratch_copy(tmp_path)
    (work / "config/not-strict.yaml").write_text("pins: {strict: false}\n")  # a run, not a dry run: pins checked
    study = load_study(CONFIG)
    layout = Layout.of(study.config)
    proc = snakemake(
        work,
        layout.collection_manifest("toolbench"),  # before --configfile, which takes every name after it
        "--cores",
        "1",
        "--configfile",
        "config/luo2024.yaml",
        "config/not-strict.yaml",
        check=False,
    )
    assert proc.returncode != 0, "preparing ToolBench without its folder must fail"
    log = (work / layout.log("prepare_collection/toolbench")).read_text()
    folder = study.collection("toolbench")["source"]["path"]
    assert f"MissingLocalDataError: collections.toolbench: toolbench data not found: {folder} (source.path)" in log
    assert toolbench.LOCAL_FILES in log and toolbench.GET_FROM in log
