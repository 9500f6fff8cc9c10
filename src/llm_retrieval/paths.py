"""The results layout: every path the study writes, under one root (config ``results_root``).

The rules, the scripts and the package all ask a ``Layout`` for a path, so a pattern is
written once, here. Called with Snakemake wildcards (``layout.bm25_index("{collection}")``)
a method returns the rule's pattern; called with values, the concrete file.
"""

from __future__ import annotations

from .study import EvalUnit

COLLECTION_FILES = ("corpus", "queries", "qrels")


class Layout:
    """Paths of the study's products below ``root`` (the validated config's ``results_root``)."""

    def __init__(self, root: str):
        self.root = root

    @classmethod
    def of(cls, config: dict) -> Layout:
        return cls(config["results_root"])

    # --- sources and canonical collections ---------------------------------------------

    def stdlib_codesearch_pairs(self) -> str:
        return f"{self.root}/sources/stdlib-codesearch/pairs.parquet"

    def synthetic_text(self) -> str:
        return f"{self.root}/sources/synth-text"

    def downloads(self, name: str) -> str:
        return f"{self.root}/downloads/{name}"

    def collection_file(self, collection: str, kind: str) -> str:
        return f"{self.root}/data/{collection}/{kind}.parquet"

    def collection_files(self, collection: str) -> dict[str, str]:
        return {kind: self.collection_file(collection, kind) for kind in COLLECTION_FILES}

    def collection_manifest(self, collection: str) -> str:
        return f"{self.root}/data/{collection}/manifest.json"

    # --- backbones, BM25, embeddings, runs, metrics --------------------------------------

    def backbone_record(self, backbone: str) -> str:
        return f"{self.root}/models/{backbone}/backbone.json"

    def model_dir(self, backbone: str) -> str:
        return f"{self.root}/models/{backbone}/model"

    def bm25_index(self, collection: str) -> str:
        return f"{self.root}/bm25/{collection}/index"

    def embeddings_dir(self, setting: str, backbone: str, collection: str) -> str:
        return f"{self.root}/embeddings/{setting}/{backbone}/{collection}"

    def query_embeddings(self, setting: str, backbone: str, collection: str) -> str:
        return f"{self.embeddings_dir(setting, backbone, collection)}/queries.parquet"

    def query_embeddings_only(self, setting: str, backbone: str, collection: str) -> str:
        """Query embeddings encoded on their own: the setting searches another setting's corpus encoding
        (Study.corpus_setting: an instruction variant without a passage instruction of its own)."""
        return f"{self.embeddings_dir(setting, backbone, collection)}/queries-only.parquet"

    def corpus_shard(self, setting: str, backbone: str, collection: str, shard) -> str:
        return f"{self.embeddings_dir(setting, backbone, collection)}/corpus/shard-{shard}.parquet"

    def sentence_embeddings(self, setting: str, backbone: str, collection: str) -> str:
        """An STS collection's embeddings: both sentences of each pair."""
        return f"{self.embeddings_dir(setting, backbone, collection)}/sentences.parquet"

    def runs_dir(self, setting: str, retriever: str, collection: str) -> str:
        """A dense search's output folder: one run file per evaluated query set."""
        return f"{self.root}/runs/{setting}/{retriever}/{collection}"

    def run_file(self, setting: str, retriever: str, collection: str, query_set: str) -> str:
        return f"{self.runs_dir(setting, retriever, collection)}/{query_set}.trec"

    def metrics(self, unit: EvalUnit) -> str:
        return f"{self.root}/metrics/{unit.setting}/{unit.retriever}/{unit.collection}/{unit.query_set}.json"

    # --- training --------------------------------------------------------------------------

    def training_groups(self, task: str) -> str:
        """A training task's groups, prepared once and read by every recipe training on it."""
        return f"{self.root}/training_groups/{task}.parquet"

    def adapter(self, recipe: str, backbone: str) -> str:
        return f"{self.root}/train/{recipe}/{backbone}/adapter"

    def adapter_snapshot(self, recipe: str, backbone: str, step) -> str:
        return f"{self.root}/train/{recipe}/{backbone}/adapter-step-{step}"

    def training_report(self, recipe: str, backbone: str) -> str:
        return f"{self.root}/train/{recipe}/{backbone}/training.json"

    def checkpoints(self, recipe: str, backbone: str) -> str:
        return f"{self.root}/checkpoints/{recipe}/{backbone}"

    # --- tables, figures, report -------------------------------------------------------------

    def table(self, name: str, ext: str) -> str:
        return f"{self.root}/tables/{name}.{ext}"

    def axis_table(self, base: str, axis: str, ext: str) -> str:
        return f"{self.root}/tables/axes/{base}.{axis}.{ext}"

    def figure(self, table: str, kind: str, ext: str) -> str:
        return f"{self.root}/report/figures/{table}/{kind}.{ext}"

    def report_page(self, name: str) -> str:
        return f"{self.root}/report/{name}"

    def preflight(self, name: str) -> str:
        """The preflight's report and its parts (``parts/<check>.json``; ``""``: the folder, with its slash)."""
        return f"{self.root}/preflight/{name}"

    # --- every job's log and benchmark ---------------------------------------------------------

    def log(self, job: str) -> str:
        """``job``: the rule name, then its wildcards as folders (``bm25_index/{collection}``)."""
        return f"{self.root}/logs/{job}.log"

    def benchmarks_dir(self) -> str:
        return f"{self.root}/benchmarks"

    def benchmark(self, job: str) -> str:
        return f"{self.benchmarks_dir()}/{job}.tsv"
