import glob
import json
import os
import sys

from llm_retrieval import axes, model_resources, recipes
from llm_retrieval.data import training_sources
from llm_retrieval.pins import UnpinnedError, apply_lock, check_pins, read_lock
from llm_retrieval.data.sources import local_inputs
from llm_retrieval.evaluation_kinds import RETRIEVAL, STS
from llm_retrieval.report import FIGURE_KINDS, PIN_FILES, table_collections, table_units
from llm_retrieval.study import BM25, LEXICAL, ConfigError, Study, metrics_path

# Hub revisions pinned by `python -m llm_retrieval.pins`: the lock's commit hashes replace the
# config's branch names before anything reads them; what stays unpinned is checked at onstart.
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

R = "results"
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
    table=regex_of(config.get("tables", {})),
    recipe=regex_of(recipes.recipes(config)),
    task=regex_of(recipes.task_sources(config)),


# --- paths ----------------------------------------------------------------------


def collection_files(collection):
    return {kind: f"{R}/data/{collection}/{kind}.parquet" for kind in ("corpus", "queries", "qrels")}


def shard_files(setting, backbone, collection):
    """The corpus shards of one encoding, as many as its estimated token volume asks (Study.corpus_shards)."""
    n = study.corpus_shards(collection, setting)
    return [f"{R}/embeddings/{setting}/{backbone}/{collection}/corpus/shard-{i}.parquet" for i in range(n)]


def corpus_shards(wildcards):
    return shard_files(wildcards.setting, wildcards.backbone, wildcards.collection)


def metrics_file(unit):
    return metrics_path(unit, R)


def all_metrics():
    return [metrics_file(unit) for unit in study.eval_units()]


def all_embeddings():
    """Every query and corpus-shard embedding file: study products in their own right, and as
    targets a deleted one is recomputed (and what depends on it), not silently skipped."""
    files = []
    for setting in study.dense_settings():
        retrieval, sts = study.collections_of_kind(setting, RETRIEVAL), study.collections_of_kind(setting, STS)
        for backbone in study.backbones_of(setting):
            for collection in retrieval:
                stem = f"{R}/embeddings/{setting}/{backbone}/{collection}"
                files.append(f"{stem}/queries.parquet")
                files += shard_files(setting, backbone, collection)
            for collection in sts:  # sts.smk: both sentences of each pair
                files.append(f"{R}/embeddings/{setting}/{backbone}/{collection}/sentences.parquet")
    return files


def study_tables():
    """The tables with at least one dataset in this study (a slice of the demo may leave one empty)."""
    return [name for name in config.get("tables", {}) if table_collections(study, name)]


def all_tables():
    exts = ["md", "csv", "html", "json", "fidelity.md", "fidelity.json", "fidelity.html"]
    return expand(f"{R}/tables/{{table}}.{{ext}}", table=study_tables(), ext=exts)


# --- the HTML report (snakemake --report) -------------------------------------------

SETTING_CATEGORY = {"zeroshot": "Zero-shot", "supervised": "Supervised"}
REPORT_PAGES = ["summary.html", "fidelity.html", "cost.html", "cost.csv", "provenance.html"]


def table_figures(table):
    return [f"{R}/report/figures/{table}/{kind}.{ext}" for kind in FIGURE_KINDS for ext in ("svg", "png")]


def report_items():
    """(path, caption, category, subcategory) of every file the HTML report shows."""
    items = [(f"{R}/report/{page}", page.replace(".", "_") + ".rst", "Overview", None) for page in REPORT_PAGES]
    for name in study_tables():
        spec = config["tables"][name]
        where = (SETTING_CATEGORY[spec["setting"]], spec["title"])
        items += [
            (f"{R}/tables/{name}.html", "table.rst", *where),
            (f"{R}/tables/{name}.csv", "table_csv.rst", *where),
            (f"{R}/tables/{name}.fidelity.html", "fidelity.rst", *where),
        ]
        items += [(f"{R}/report/figures/{name}/{kind}.svg", f"{kind}.rst", *where) for kind in FIGURE_KINDS]
    for base, axis in axes.axis_tables(config):  # study axes (docs/axes.md): the curve and its table
        where = (SETTING_CATEGORY[base], f"Axis: {axes.AXES[axis]['label']}")
        items += [
            (f"{R}/tables/axes/{base}.{axis}.svg", "axis_curve.rst", *where),
            (f"{R}/tables/axes/{base}.{axis}.csv", "axis_table.rst", *where),
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
    plain += [f"{R}/report/{name}" for name in ["summary.md", "workflow.rst", "cost.md", "cost.json"]]
    wanted = list(dict.fromkeys(plain + [path for path, *_ in report_items()]))
    return [flagged.get(path, path) for path in wanted]


def report_front_page():
    """The report's first page: the generated one once the summary exists, else the template."""
    made = f"{R}/report/workflow.rst"
    return made if os.path.exists(made) else "workflow/report/workflow.rst"


def pin_files():
    """Files whose pins the report shows: the hub-revision lock and the package pins, where present."""
    files = [PINS_LOCK, *PIN_FILES, *sorted(glob.glob("*.lock"))]
    return [p for p in dict.fromkeys(files) if os.path.exists(p)]


def backbone_record(wildcards):
    return f"{R}/models/{wildcards.backbone}/backbone.json"


def supervised_max_length(wildcards):
    """Supervised encoding formats and truncates exactly as training did (a length variant: its own limit)."""
    return axes.max_length_for(config, wildcards.setting)


def encoding_of(wildcards):
    """The `encoding` section as this setting or axis variant uses it."""
    return axes.encoding_for(config, wildcards.setting, wildcards.collection)


def adapter_of(wildcards):
    """The supervised setting encodes with the trained LoRA adapter (a steps variant: the one exported
    at that step); zero-shot with none."""
    if axes.base_of(wildcards.setting) != "supervised":
        return []
    step = axes.adapter_step(config, wildcards.setting)
    recipe = axes.recipe_of(config, wildcards.setting)  # whose retriever: the default recipe or a recipe variant's
    if step is not None:
        return [snapshot_dir(recipe, wildcards.backbone, step)]
    return [adapter_dir(recipe, wildcards.backbone)]


def adapter_dir(recipe, backbone):
    return f"{R}/train/{recipe}/{backbone}/adapter"


def snapshot_dir(recipe, backbone, step):
    return f"{R}/train/{recipe}/{backbone}/adapter-step-{step}"


def groups_file(task):
    """A training task's groups, prepared once and read by every recipe training on it."""
    return f"{R}/training_groups/{task}.parquet"


def snapshot_outputs():
    """train_lora's outputs for the learning curve: one adapter folder per step of settings.supervised.axes.steps."""
    return {f"step_{n}": directory(snapshot_dir("{recipe}", "{backbone}", n)) for n in axes.snapshot_steps(config)}


def all_axis_tables():
    return [
        f"{R}/tables/axes/{base}.{axis}.{ext}"
        for base, axis in axes.axis_tables(config)
        for ext in ("md", "csv", "svg")
    ]


def axis_table_metrics(wildcards):
    return [
        metrics_file(unit)
        for unit in study.eval_units()
        if unit.setting in axes.axis_settings(config, wildcards.base, wildcards.axis)
    ]


# --- input functions ---------------------------------------------------------------


def source_inputs(wildcards):
    """Local files a collection is made from; remote sources have none (they are fetched)."""
    source = study.collection(wildcards.collection)["source"]
    if source["type"] == "stdlib_codesearch":
        return {"pairs": f"{R}/sources/stdlib-codesearch/pairs.parquet"}
    return local_inputs(source)


def get_training_group_inputs(wildcards):
    """A source mined from a collection reads its canonical files and BM25 index; others read nothing local."""
    collection = training_sources.needs_collection(recipes.task_sources(config)[wildcards.task])
    if collection is None:
        return {}
    return {"index": f"{R}/bm25/{collection}/index", **collection_files(collection)}


def get_recipe_groups(wildcards):
    """The groups of every task of the recipe, by task name."""
    return {t.task: groups_file(t.task) for t in recipes.recipe(config, wildcards.recipe).tasks}


def recipe_task_options(recipe_name):
    """train_lora.py's --task-options: each task's weight and query instructions."""
    return json.dumps(
        {
            t.task: {"weight": t.weight, "query_instructions": list(t.query_instructions)}
            for t in recipes.recipe(config, recipe_name).tasks
        }
    )


def run_of(wildcards):
    """The search job's output a query set's run comes from: a dense search writes one folder per
    (setting, backbone, collection) holding every query set's run; BM25 one file per query set."""
    stem = f"{R}/runs/{wildcards.run_setting}/{wildcards.retriever}/{wildcards.collection}"
    return f"{stem}/{wildcards.query_set}.trec" if wildcards.run_setting == LEXICAL else stem


def run_file_of(wildcards):
    """The run file itself, inside the folder for dense runs."""
    stem = f"{R}/runs/{wildcards.run_setting}/{wildcards.retriever}/{wildcards.collection}"
    return f"{stem}/{wildcards.query_set}.trec"


def table_metrics(wildcards):
    return [metrics_file(unit) for unit in table_units(study, wildcards.table)]
