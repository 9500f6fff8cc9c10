"""The study configuration, checked beyond what the JSON schema can say.

The schema (workflow/schemas/config.schema.yaml) checks shapes and fills defaults;
this module checks the cross-references (a setting naming an unknown backbone,
a table naming an unknown setting, ...) and derives the job lists the DAG expands.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from . import axes, corpus_sizes, encoders, evaluation_kinds, recipes

SETTINGS = ("zeroshot", "supervised")
LEXICAL = "lexical"  # the setting name BM25 runs are filed under
BM25 = "bm25"  # the retriever name of the lexical baseline


class ConfigError(ValueError):
    """A config problem; the message names the offending key path."""


@dataclass(frozen=True)
class EvalUnit:
    """One run to score: a retriever on one query set of one collection."""

    setting: str
    retriever: str
    collection: str
    query_set: str


def check_global_batch(training: dict, world_size: int) -> int:
    """The one global-batch check: global_batch = per_device_batch x gradient_accumulation x world size.

    The DAG build checks it against training.world_size; the training ranks check it
    against the world they were actually started with. Returns the global batch.
    """
    product = training["per_device_batch"] * training["gradient_accumulation"] * world_size
    if product != training["global_batch"]:
        raise ConfigError(
            f"training.global_batch={training['global_batch']} but per_device_batch {training['per_device_batch']} "
            f"x gradient_accumulation {training['gradient_accumulation']} x world size {world_size} = {product}; "
            f"make global_batch equal that product"
        )
    return product


class Study:
    def __init__(self, config: dict[str, Any]):
        self.config = config
        self.backbones: dict[str, dict] = config["backbones"]
        self.collections: dict[str, dict] = config["collections"]
        self.settings: dict[str, dict] = config.get("settings", {})
        self.variants: list[axes.Variant] = axes.variants(self.settings)
        # Computed once each: the input functions ask for them for every job (the config does not change).
        self._cache: dict[tuple, tuple[tuple, Any]] = {}
        self._check_references()
        self._check_encoding()
        axes.check(config, ConfigError)
        encoders.check(config, ConfigError)

    def _check_references(self) -> None:
        self._check_settings()
        training = self.config.get("training")
        if "supervised" in self.settings and not training:
            raise ConfigError("training: required when settings.supervised is present")
        recipes.check(self.config, ConfigError)
        for name, recipe in recipes.recipes(self.config).items():
            try:
                check_global_batch(recipe.training, recipe.training["world_size"])
            except ConfigError as err:
                raise ConfigError(str(err) if name == recipes.DEFAULT else f"recipes.{name}: {err}") from None
        for name, table in self.config.get("tables", {}).items():
            self._check_table(name, table)
        for name in self.config["report"].get("main_tables", []):
            if name not in self.config.get("tables", {}):
                raise ConfigError(
                    f"report.main_tables: unknown table {name!r} (known: {', '.join(self.config.get('tables', {}))})"
                )

    def _check_settings(self) -> None:
        for name, setting in self.settings.items():
            for backbone in setting["backbones"]:
                if backbone not in self.backbones:
                    raise ConfigError(
                        f"settings.{name}.backbones: unknown backbone {backbone!r} (known: {', '.join(self.backbones)})"
                    )
            for collection in setting["collections"]:
                if collection not in self.collections:
                    raise ConfigError(
                        f"settings.{name}.collections: unknown collection {collection!r} "
                        f"(known: {', '.join(self.collections)})"
                    )

    def _check_table(self, name: str, table: dict) -> None:
        if table["setting"] not in self.dense_settings():
            # A setting variant (``supervised.instruction-on``) is a table's setting too: the study's
            # instruction-trained table is one, with its published numbers and fidelity.
            raise ConfigError(
                f"tables.{name}.setting: setting {table['setting']!r} is not configured "
                f"(configured: {', '.join(self.dense_settings())})"
            )
        for collection in table.get("collections", []):
            if collection not in self.collections_of(table["setting"]):
                raise ConfigError(
                    f"tables.{name}.collections: {collection!r} is not among settings.{table['setting']}.collections"
                )
        if "columns" not in table and "measure" not in table:
            raise ConfigError(f"tables.{name}: needs either 'measure' or 'columns'")
        self._check_table_measures(name, table)

    def _check_table_measures(self, name: str, table: dict) -> None:
        """Every measure a table reads is one its collections' metrics files hold."""
        collections = table.get("collections") or [
            c for c in self.collections_of(table["setting"]) if self.collections[c]["table"] == name
        ]
        kinds = {self.collection_kind(c) for c in collections} or {evaluation_kinds.RETRIEVAL}
        wanted = [("measure", table["measure"])] if "measure" in table else []
        wanted += [(f"columns[{i}].measure", c["measure"]) for i, c in enumerate(table.get("columns", []))]
        for key, measure in wanted:
            problem = evaluation_kinds.unknown_measure(measure, kinds)
            if problem:
                raise ConfigError(f"tables.{name}.{key}: {problem}")

    def _check_encoding(self) -> None:
        encoding = self.config.get("encoding", {})
        if "batch_tokens" not in encoding:
            return
        lengths = dict(encoding.get("max_text_tokens", {}))
        if "supervised" in self.settings and self.config.get("training"):
            lengths.update({f"training.max_length.{k}": v for k, v in self.config["training"]["max_length"].items()})
        for name, length in lengths.items():
            if encoding["batch_tokens"] < length:
                raise ConfigError(
                    f"encoding.batch_tokens: {encoding['batch_tokens']} cannot hold one longest sequence "
                    f"({name}: {length} tokens plus the prompt template); raise it above {length}"
                )

    # --- the shard plan (sizes estimated before download) ----------------------

    @cached_property
    def size_table(self) -> corpus_sizes.SizeTable:
        return corpus_sizes.SizeTable()

    def corpus_size(self, collection: str, setting: str = "zeroshot") -> tuple[int, int]:
        """(documents, encoded tokens) estimated for one collection's corpus in one setting's format:
        zero-shot, the PromptReps template around text cut at max_text_tokens.passage; supervised,
        ``Passage: `` + text + EOS within training.max_length.passage. Computed once per (collection,
        setting): the DAG build asks for it from several input functions of every encoding job."""
        spec = self.collection(collection)
        return self._once(
            ("corpus_size", collection, setting),
            (spec, self.config["encoding"]["max_text_tokens"], (self.config.get("training") or {}).get("max_length")),
            lambda: self._estimate_corpus_size(collection, setting),
        )

    def _estimate_corpus_size(self, collection: str, setting: str) -> tuple[int, int]:
        try:
            documents, mean_tokens = self.size_table.mean_tokens(collection, self.collection(collection))
        except corpus_sizes.SizeEstimateError as err:
            raise ConfigError(str(err)) from None
        if axes.base_of(setting) == "supervised":  # a setting variant: its own passage length (axes.py)
            whole = self.max_length(setting)["passage"]
            template = corpus_sizes.SUPERVISED_TEMPLATE_TOKENS
            return documents, corpus_sizes.encoded_tokens(documents, mean_tokens, max(1, whole - template), template)
        passage = self.encoding(setting, collection)["max_text_tokens"]["passage"]
        tokens = corpus_sizes.encoded_tokens(documents, mean_tokens, passage, self.size_table.template_tokens)
        return documents, tokens

    def corpus_shards(self, collection: str, setting: str = "zeroshot") -> int:
        """Number of shard jobs for one corpus: its estimated tokens / encoding.shard_tokens, at least 1."""
        return corpus_sizes.shard_count(
            self.corpus_size(collection, setting)[1], self.config["encoding"]["shard_tokens"]
        )

    def encoding(self, setting: str, collection: str) -> dict:
        """The ``encoding`` section as a setting or axis variant uses it on a collection (axes.encoding_for),
        computed once per pair; callers must not modify it."""
        return self._once(
            ("encoding", setting, collection),
            (self.config["encoding"], self.collection(collection)),
            lambda: axes.encoding_for(self.config, setting, collection),
        )

    def corpus_setting(self, setting: str, collection: str) -> str:
        """axes.corpus_setting (whose corpus encoding a setting searches), once per pair."""
        return self._once(
            ("corpus_setting", setting, collection),
            (self.settings.get(axes.base_of(setting)), self.collection(collection).get("instructions")),
            lambda: axes.corpus_setting(self.config, setting, collection),
        )

    def _once(self, key: tuple, inputs: tuple, compute):
        """``compute()`` once per key while ``inputs`` (the config parts it reads) stay as they were: the input
        functions ask for these for every job, and a config edited after a lookup is not answered stale.
        The check compares ``inputs`` with a copy taken when the answer was computed (by value, ``==``): a
        hundredth of the time of the ``repr`` it replaced, which cost more than some of the answers."""
        cached = self._cache.get(key)
        if cached is None or cached[0] != inputs:
            cached = self._cache[key] = (copy.deepcopy(inputs), compute())
        return cached[1]

    def _per_setting(self, what: str, compute, setting: str):
        """``compute(config, setting)`` once per setting (its setting's section, training lengths and recipes)."""
        inputs = (
            self.settings.get(axes.base_of(setting)),
            (self.config.get("training") or {}).get("max_length"),
            self.config.get("recipes"),
        )
        return self._once((what, setting), inputs, lambda: compute(self.config, setting))

    def max_length(self, setting: str) -> dict | None:
        """axes.max_length_for, once per setting; callers must not modify it."""
        return self._per_setting("max_length", axes.max_length_for, setting)

    def adapter_step(self, setting: str) -> int | None:
        """axes.adapter_step, once per setting."""
        return self._per_setting("adapter_step", axes.adapter_step, setting)

    def recipe_of(self, setting: str) -> str:
        """axes.recipe_of, once per setting."""
        return self._per_setting("recipe_of", axes.recipe_of, setting)

    # --- what the DAG expands -------------------------------------------------

    def backbones_of(self, setting: str) -> list[str]:
        """Backbones of a setting or of a setting variant (``supervised.steps-200``: its setting's)."""
        if axes.base_of(setting) not in self.settings:
            return []
        return list(self._per_setting("scope", axes.scope, setting)[0])

    def collections_of(self, setting: str) -> list[str]:
        if axes.base_of(setting) not in self.settings:
            return []
        return list(self._per_setting("scope", axes.scope, setting)[1])

    def dense_settings(self) -> list[str]:
        """The settings and their axis variants, each a full encode -> search -> evaluate pass."""
        return [s for s in SETTINGS if s in self.settings] + [v.name for v in self.variants]

    def used_collections(self) -> list[str]:
        seen: dict[str, None] = {}
        for setting in self.settings.values():
            seen.update(dict.fromkeys(setting["collections"]))
        sources = recipes.task_sources(self.config)
        for task in self.trained_tasks():
            if "collection" in sources[task]:  # a source mined from a collection (training_sources.needs_collection)
                seen[sources[task]["collection"]] = None
        return list(seen)

    def trained_recipes(self) -> list[str]:
        """The recipes whose retrievers the supervised setting or its variants evaluate."""
        if "supervised" not in self.settings:
            return []
        return list(
            dict.fromkeys(
                [recipes.DEFAULT]
                + [axes.recipe_of(self.config, s) for s in self.dense_settings() if axes.base_of(s) == "supervised"]
            )
        )

    def trained_tasks(self) -> list[str]:
        return recipes.tasks_of(self.config, self.trained_recipes())

    def used_backbones(self) -> list[str]:
        seen: dict[str, None] = {}
        for setting in self.settings.values():
            seen.update(dict.fromkeys(setting["backbones"]))
        return list(seen)

    def eval_query_sets(self, collection: str) -> list[str]:
        return [qs for qs, spec in self.collections[collection]["query_sets"].items() if spec["evaluate"]]

    def eval_units(self) -> Iterator[EvalUnit]:
        """Every run the study scores: BM25 on each used retrieval collection, each backbone per setting
        (an STS collection's unit is its sentence pairs scored by the backbone's embeddings: sts.py)."""
        evaluated = {c for s in self.settings.values() for c in s["collections"]}
        for collection in self.used_collections():
            if collection in evaluated and self.collection_kind(collection) == evaluation_kinds.RETRIEVAL:
                for query_set in self.eval_query_sets(collection):
                    yield EvalUnit(LEXICAL, BM25, collection, query_set)
        for setting in self.dense_settings():
            for backbone in self.backbones_of(setting):
                for collection in self.collections_of(setting):
                    for query_set in self.eval_query_sets(collection):
                        yield EvalUnit(setting, backbone, collection, query_set)

    def collections_of_kind(self, setting: str | None, kind: str) -> list[str]:
        """A setting's (None: the config's) collections of one evaluation kind (retrieval: an encoded
        corpus, searched; sts: sentence pairs)."""
        names = self.collections if setting is None else self.collections_of(setting)
        return [c for c in names if self.collection_kind(c) == kind]

    def collection_kind(self, name: str) -> str:
        """``retrieval`` or ``sts`` (evaluation_kinds.py): what the collection's jobs compute."""
        return evaluation_kinds.kind_of(self.collection(name))

    # --- what a table reads (planned at DAG build: no statistics library imported here) ----

    def table_collections(self, name: str) -> list[str]:
        """The table's own list if it has one, else its setting's collections that name this table."""
        spec = self.config["tables"][name]
        if "collections" in spec:
            return list(spec["collections"])
        return [c for c in self.collections_of(spec["setting"]) if self.collection(c)["table"] == name]

    def table_units(self, name: str) -> list[EvalUnit]:
        """The runs a table reads, BM25 included (an STS collection has no BM25 run: sts.py)."""
        setting = self.config["tables"][name]["setting"]
        units = []
        for collection in self.table_collections(name):
            for query_set in self.eval_query_sets(collection):
                if self.collection_kind(collection) != evaluation_kinds.STS:
                    units.append(EvalUnit(LEXICAL, BM25, collection, query_set))
                units.extend(EvalUnit(setting, b, collection, query_set) for b in self.backbones_of(setting))
        return units

    def collection(self, name: str) -> dict:
        try:
            return self.collections[name]
        except KeyError:
            raise ConfigError(f"collections: unknown collection {name!r}") from None

    def backbone(self, name: str) -> dict:
        try:
            return self.backbones[name]
        except KeyError:
            raise ConfigError(f"backbones: unknown backbone {name!r} (known: {', '.join(self.backbones)})") from None
