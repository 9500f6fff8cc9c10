# Shared by the rule files. The study (config checked beyond its schema, hub pins applied), the
# results layout, the conda environment, the wildcard constraints; then, under a header naming
# each rule file, the input functions and target lists that file uses.

import glob
import json
import os
import sys

from llm_retrieval import axes, model_resources, recipes
from llm_retrieval.data import training_sources
from llm_retrieval.data.demo import PAIRS_SOURCE_TYPES
from llm_retrieval.data.sources import local_inputs, missing_local_data, planned_local_inputs
from llm_retrieval.evaluation_kinds import RETRIEVAL, STS
from llm_retrieval.paths import Layout
from llm_retrieval.pins import UnpinnedError, apply_lock, check_pins, hub_refs, read_lock
from llm_retrieval.preflight import drill as preflight_drill
from llm_retrieval.preflight import probe as preflight_probe
from llm_retrieval.preflight import requests as preflight_requests
from llm_retrieval.report import FIGURE_KINDS, PIN_FILES
from llm_retrieval.study import BM25, LEXICAL, ConfigError, EvalUnit, Study

# Hub revisions pinned by `python -m llm_retrieval.pins`: the lock's commit hashes replace the
# config's branch names before anything reads them; what stays unpinned is checked at onstart (guards.smk).
PINS_LOCK = config["pins"]["lock"]
try:
    UNPINNED = apply_lock(config, read_lock(PINS_LOCK))
except UnpinnedError as err:
    raise WorkflowError(str(err)) from None

try:
    study = Study(config)
    model_resources.check_fits(config)
except (ConfigError, model_resources.SizingError) as err:
    raise WorkflowError(f"invalid config: {err}") from None

# Every output path, below config["results_root"].
layout = Layout.of(config)
ENV = "../../envs/retrieval.yaml"


def regex_of(names):
    return "|".join(re.escape(n) for n in names) if names else "(?!)"


wildcard_constraints:
    backbone=regex_of(study.backbones),
    collection=regex_of(study.collections),
    setting=regex_of(study.dense_settings()),
    retriever=regex_of([BM25, *study.backbones]),
    query_set=r"[a-z0-9][a-z0-9_.-]*",
    shard=r"\d+",
    table=regex_of(config["tables"]),
    recipe=regex_of(recipes.recipes(config)),
    task=regex_of(recipes.task_sources(config)),


def of_collection(key):
    """A params function: the job's collection's `key` (collections.<collection>.<key>, schema defaults filled).
    Not Snakemake's lookup(dpath=...): its glob matching made the scaling dry run half again as slow."""
    return lambda wildcards: study.collection(wildcards.collection)[key]


# --- data.smk and sts.smk: the files a collection (retrieval or STS) is made from ------------------


def get_source_files(wildcards):
    """Local files a collection is made from; remote sources have none (they are fetched). Hand-fetched
    files that are missing are left out (the job says what to fetch): a fresh clone still plans."""
    source = study.collection(wildcards.collection)["source"]
    if source["type"] in PAIRS_SOURCE_TYPES:
        return {"pairs": layout.stdlib_codesearch_pairs()}
    return planned_local_inputs(source)


# Said up front, in the dry run too: the study's hand-fetched data that is not there yet.
if workflow.is_main_process:
    for name in study.used_collections():
        missing = missing_local_data(study.collection(name)["source"])
        if missing:
            logger.warning(
                f"collections.{name}: {missing}. Until then the plan sizes it by its size_estimate and "
                "the job preparing it fails"
            )


# --- encode.smk: the shard plan, the encoder's inputs and params ----------------------------------


def shard_files(setting, backbone, collection):
    """The corpus shards of one encoding, as many as its estimated token volume asks (Study.corpus_shards)."""
    n = study.corpus_shards(collection, setting)
    return [layout.corpus_shard(setting, backbone, collection, i) for i in range(n)]


def query_file(setting, backbone, collection):
    """A search's query embeddings: with the first corpus shard, or on their own where the setting searches
    another setting's corpus encoding (Study.corpus_setting)."""
    if study.corpus_setting(setting, collection) == setting:
        return layout.query_embeddings(setting, backbone, collection)
    return layout.query_embeddings_only(setting, backbone, collection)


def all_embeddings():
    """Every query and corpus-shard embedding file: study products in their own right, and as
    targets a deleted one is recomputed (and what depends on it), not silently skipped."""
    files = []
    for setting in study.dense_settings():
        retrieval, sts = study.collections_of_kind(setting, RETRIEVAL), study.collections_of_kind(setting, STS)
        for backbone in study.backbones_of(setting):
            for collection in retrieval:
                files.append(query_file(setting, backbone, collection))
                files += shard_files(study.corpus_setting(setting, collection), backbone, collection)
            for collection in sts:  # sts.smk: both sentences of each pair
                files.append(layout.sentence_embeddings(setting, backbone, collection))
    return list(dict.fromkeys(files))  # a corpus encoding searched by several settings, once


def get_adapter(wildcards):
    """The supervised setting encodes with the trained LoRA adapter (a steps variant: the one exported
    at that step); zero-shot with none."""
    if axes.base_of(wildcards.setting) != "supervised":
        return []
    step = study.adapter_step(wildcards.setting)
    recipe = study.recipe_of(wildcards.setting)  # whose retriever: the default recipe or a recipe variant's
    if step is None:
        return [layout.adapter(recipe, wildcards.backbone)]
    return [layout.adapter_snapshot(recipe, wildcards.backbone, step)]


def get_encoder_files(wildcards):
    """The backbone's record and, for supervised encoding, its adapter."""
    return {"backbone": layout.backbone_record(wildcards.backbone), "adapter": get_adapter(wildcards)}


def get_encoding(wildcards):
    """The `encoding` section as this setting or axis variant uses it."""
    return study.encoding(wildcards.setting, wildcards.collection)


def get_max_length(wildcards):
    """Supervised encoding formats and truncates exactly as training did (a length variant: its own limit)."""
    return study.max_length(wildcards.setting)


def get_num_shards(wildcards):
    return study.corpus_shards(wildcards.collection, wildcards.setting)


# --- search.smk: the queries and every corpus shard of one search ---------------------------------


def get_query_file(wildcards):
    return query_file(wildcards.setting, wildcards.backbone, wildcards.collection)


def get_corpus_shard_files(wildcards):
    """The shards of the corpus encoding the search reads: its own, or the one it shares (Study.corpus_setting)."""
    setting = study.corpus_setting(wildcards.setting, wildcards.collection)
    return shard_files(setting, wildcards.backbone, wildcards.collection)


# --- train.smk: each task's groups inputs, a recipe's groups and options, the learning curve's snapshots -------


def get_training_group_inputs(wildcards):
    """A source mined from a collection reads its canonical files and BM25 index; a stdlib one the stdlib
    pairs; others read nothing local."""
    source = recipes.task_sources(config)[wildcards.task]
    if source["type"] in PAIRS_SOURCE_TYPES:
        return {"pairs": layout.stdlib_codesearch_pairs()}
    collection = training_sources.needs_collection(source)
    if collection is None:
        return {}
    return {"index": layout.bm25_index(collection), **layout.collection_files(collection)}


def get_recipe_groups(wildcards):
    """The groups of every task of the recipe, by task name."""
    return {t.task: layout.training_groups(t.task) for t in recipes.recipe(config, wildcards.recipe).tasks}


def get_training_inputs(wildcards):
    """The backbone's record and the groups of every task of the recipe."""
    return {"backbone": layout.backbone_record(wildcards.backbone), **get_recipe_groups(wildcards)}


def recipe_task_options(recipe_name):
    """train_lora.py's --task-options: each task's weight and query instructions, and its passage instructions
    where it has some (a task without keeps the options, and so the job, of before)."""
    return json.dumps(
        {
            t.task: {
                "weight": t.weight,
                "query_instructions": list(t.query_instructions),
                **({"passage_instructions": list(t.passage_instructions)} if t.passage_instructions else {}),
            }
            for t in recipes.recipe(config, recipe_name).tasks
        }
    )


def snapshot_outputs():
    """train_lora's outputs for the learning curve: one adapter folder per step of settings.supervised.axes.steps."""
    return {
        f"step_{n}": directory(layout.adapter_snapshot("{recipe}", "{backbone}", n))
        for n in axes.snapshot_steps(config)
    }


# --- evaluate.smk: the run a metrics job scores; every metrics file -------------------------------


def all_metrics():
    return [layout.metrics(unit) for unit in study.eval_units()]


def get_run(wildcards):
    """The search job's output a query set's run comes from: a dense search writes one folder per
    (setting, backbone, collection) holding every query set's run; BM25 one file per query set."""
    if wildcards.run_setting == LEXICAL:
        return get_run_file(wildcards)
    return layout.runs_dir(wildcards.run_setting, wildcards.retriever, wildcards.collection)


def get_run_file(wildcards):
    """The run file itself, inside the folder for dense runs."""
    return layout.run_file(wildcards.run_setting, wildcards.retriever, wildcards.collection, wildcards.query_set)


# --- report.smk: tables, figures, and the registry of what `snakemake --report` shows -------------


TABLE_EXTS = ["md", "csv", "html", "json", "fidelity.md", "fidelity.json", "fidelity.html"]


def study_tables():
    """The tables with at least one dataset in this study (a slice of the demo may leave one empty)."""
    return [name for name in config["tables"] if study.table_collections(name)]


def all_tables():
    return [layout.table(name, ext) for name in study_tables() for ext in TABLE_EXTS]


def get_table_metrics(wildcards):
    return [layout.metrics(unit) for unit in study.table_units(wildcards.table)]


def table_figures(table):
    return [layout.figure(table, kind, ext) for kind in FIGURE_KINDS for ext in ("svg", "png")]


SETTING_CATEGORY = {"zeroshot": "Zero-shot", "supervised": "Supervised"}
REPORT_PAGES = ["summary.html", "fidelity.html", "cost.html", "cost.csv", "provenance.html"]


def report_items():
    """(path, caption, category, subcategory) of every file the HTML report shows."""
    items = [(layout.report_page(page), page.replace(".", "_") + ".rst", "Overview", None) for page in REPORT_PAGES]
    for name in study_tables():
        spec = config["tables"][name]
        where = (SETTING_CATEGORY[axes.base_of(spec["setting"])], spec["title"])
        items += [
            (layout.table(name, "html"), "table.rst", *where),
            (layout.table(name, "csv"), "table_csv.rst", *where),
            (layout.table(name, "fidelity.html"), "fidelity.rst", *where),
        ]
        items += [(layout.figure(name, kind, "svg"), f"{kind}.rst", *where) for kind in FIGURE_KINDS]
    for base, axis in axes.axis_tables(config):  # study axes (docs/axes.md): the curve and its table
        where = (SETTING_CATEGORY[base], f"Axis: {axes.AXES[axis]['label']}")
        items += [
            (layout.axis_table(base, axis, "svg"), "axis_curve.rst", *where),
            (layout.axis_table(base, axis, "csv"), "axis_table.rst", *where),
        ]
    return items


def all_report():
    """Every table, figure and report page; those made already are flagged for `snakemake --report`.

    A file not made yet stays unflagged (Snakemake refuses to report a missing file): the report
    then builds from what exists, and its first page lists the tables that are missing.
    """
    flagged = {}
    for path, caption, category, subcategory in report_items():
        if os.path.exists(path):
            flagged[path] = report(
                path, caption=f"workflow/report/{caption}", category=category, subcategory=subcategory
            )
    plain = all_tables() + [f for t in study_tables() for f in table_figures(t)]
    plain += [layout.report_page(name) for name in ["summary.md", "workflow.rst", "cost.md", "cost.json"]]
    wanted = list(dict.fromkeys(plain + [path for path, *_ in report_items()]))
    return [flagged.get(path, path) for path in wanted]


def report_front_page():
    """The report's first page: the generated one once the summary exists, else the template."""
    made = layout.report_page("workflow.rst")
    return made if os.path.exists(made) else "workflow/report/workflow.rst"


def pin_files():
    """Files whose pins the report shows: the hub-revision lock and the package pins, where present."""
    files = [PINS_LOCK, *PIN_FILES, *sorted(glob.glob("*.lock"))]
    return [p for p in dict.fromkeys(files) if os.path.exists(p)]


# --- axes.smk: the metrics of an axis's variants; every axis table --------------------------------


def all_axis_tables():
    return [
        layout.axis_table(base, axis, ext) for base, axis in axes.axis_tables(config) for ext in ("md", "csv", "svg")
    ]


def get_axis_table_metrics(wildcards):
    variants = axes.axis_settings(config, wildcards.base, wildcards.axis)
    return [layout.metrics(unit) for unit in study.eval_units() if unit.setting in variants]


# --- preflight.smk: the preflight's files, its resource requests, whether a run is preflight only -----------

PREFLIGHT_TINY = layout.preflight("tiny")
PREFLIGHT_GPU_PARTS = {
    "encode_queries_and_first_shard": layout.preflight("parts/encode_queries_and_first_shard.json"),
    "encode_corpus_shard": layout.preflight("parts/encode_corpus_shard.json"),
    "search": layout.preflight("parts/search.json"),
    "train_lora": layout.preflight("parts/train_lora.json"),
}
PREFLIGHT_HEAD_PARTS = [layout.preflight("parts/requests.json"), layout.preflight("parts/hub.json")]


def preflight_only(targets):
    """True when every target of this run is a preflight rule or file."""
    return bool(targets) and all(t.startswith("preflight") or layout.preflight("") in t for t in targets)


def get_preflight_requests(wildcards):
    """Every non-local rule's resources at every attempt the profile's retries allow (Snakemake evaluates them)."""
    from snakemake.iocontainers import InputFiles, Wildcards

    study = config["settings"].values()
    values = {
        "backbone": sorted({b for s in study for b in s["backbones"]}),
        "collection": sorted({c for s in study for c in s["collections"]}),
    }
    rules = [r for r in workflow.rules if not workflow.is_local(r)]
    attempts = workflow.execution_settings.retries + 1
    return preflight_requests.expand_rules(rules, lambda d: Wildcards(fromdict=d), InputFiles(), values, attempts)


def preflight_resources(kind):
    """A preflight job of this kind: the kind's resources (training: over 2 ranks), for preflight.runtime minutes."""
    drill = preflight_drill.drill_config(config)
    return {**cluster.rule_resources(drill, kind), "runtime": config["preflight"]["runtime"]}
