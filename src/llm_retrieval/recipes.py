"""Training recipes: which data, which hyperparameters and which backbones a supervised retriever is trained with.

The config's ``training:`` section is the recipe ``default`` (its one task, also named ``default``, is
``training.data``); ``recipes:`` adds named ones. A recipe lists tasks (names of ``training_tasks:``, or
``default``), each with a sampling weight (``proportional`` to its size, or a number) and optional query
and passage instructions; its ``training:`` overrides any key of the default recipe's but ``data`` and ``world_size``
(one resources logic for every training job); ``backbones:`` the backbones it trains (default: every
supervised one). Every (recipe, backbone) is one training job; every task's groups are prepared once.
How to write one: docs/recipes.md.

The DAG build imports this module: no torch, no data reading here.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT = "default"  # the recipe `training:` describes, and the name of its one task (training.data)
NESTED = ("lora", "max_length")  # override keys merged key by key, not replaced


class RecipeError(ValueError):
    """A recipe naming what does not exist; the message names the config key."""


@dataclass(frozen=True)
class RecipeTask:
    task: str  # training_tasks name, or DEFAULT (training.data)
    weight: float | None  # None: proportional to the task's size (its global batches)
    query_instructions: tuple[str, ...] = ()  # each training query gets one, drawn with the seed
    passage_instructions: tuple[str, ...] = ()  # each passage of the task's groups gets one, drawn with the seed


@dataclass(frozen=True)
class Recipe:
    name: str
    tasks: tuple[RecipeTask, ...]
    training: dict  # the full training section with this recipe's overrides
    backbones: tuple[str, ...]


def task_sources(config: dict) -> dict[str, dict]:
    """Every training task's source, by task name (``default``: training.data)."""
    tasks = {DEFAULT: config["training"]["data"]} if config.get("training") else {}
    tasks.update({name: spec["source"] for name, spec in (config.get("training_tasks") or {}).items()})
    return tasks


def merged_training(base: dict, overrides: dict) -> dict:
    merged = {**base, **overrides}
    for key in NESTED:
        if key in base and key in overrides:
            merged[key] = {**base[key], **overrides[key]}
    return merged


def _supervised_backbones(config: dict) -> tuple[str, ...]:
    return tuple(((config.get("settings") or {}).get("supervised") or {}).get("backbones", ()))


def _task(name: str, spec: dict) -> RecipeTask:
    weight = spec.get("weight", "proportional")  # the schema's default, absent when built by hand (tests)
    instructions = spec.get("instructions") or {}
    return RecipeTask(
        name,
        None if weight == "proportional" else float(weight),
        tuple(instructions.get("query", ())),
        tuple(instructions.get("passage", ())),
    )


def recipes(config: dict) -> dict[str, Recipe]:
    """Every recipe by name, the default one first (none without a ``training:`` section)."""
    if not config.get("training"):
        return {}
    base = config["training"]
    out = {DEFAULT: Recipe(DEFAULT, (RecipeTask(DEFAULT, None),), base, _supervised_backbones(config))}
    for name, spec in (config.get("recipes") or {}).items():
        out[name] = Recipe(
            name,
            tuple(_task(task, t) for task, t in spec["tasks"].items()),
            merged_training(base, spec.get("training") or {}),
            tuple(spec.get("backbones") or _supervised_backbones(config)),
        )
    return out


def recipe(config: dict, name: str) -> Recipe:
    known = recipes(config)
    if name not in known:
        raise RecipeError(f"unknown recipe {name!r} (known: {', '.join(known)})")
    return known[name]


def training_for(config: dict, recipe_name: str, backbone: str) -> dict:
    """One (recipe, backbone)'s training section: the recipe's, with the backbone's overrides
    (``backbones.<b>.training``, e.g. a cheaper max_steps) on top."""
    return {**recipe(config, recipe_name).training, **(config["backbones"][backbone].get("training") or {})}


def tasks_of(config: dict, recipe_names) -> list[str]:
    """The tasks the given recipes train on, each once, in first-use order."""
    return list(dict.fromkeys(t.task for name in recipe_names for t in recipe(config, name).tasks))


def check(config: dict, error=RecipeError) -> None:
    """Cross-references of recipes and tasks (raised as ``error`` naming the key)."""
    known = task_sources(config)
    for name, spec in (config.get("recipes") or {}).items():
        if not config.get("training"):
            raise error(f"recipes.{name}: a recipe starts from the training: section, which is missing")
        unknown = [t for t in spec["tasks"] if t not in known]
        if unknown:
            raise error(
                f"recipes.{name}.tasks: unknown task(s) {', '.join(unknown)} "
                f"(known: {', '.join(known)}; declare one under training_tasks:)"
            )
        weights = [t.get("weight", "proportional") == "proportional" for t in spec["tasks"].values()]
        if any(weights) and not all(weights):
            raise error(f"recipes.{name}.tasks: give every task a weight, or none (proportional to its size)")
        outside = [b for b in spec.get("backbones") or [] if b not in _supervised_backbones(config)]
        if outside:
            raise error(f"recipes.{name}.backbones: {', '.join(outside)} not among settings.supervised.backbones")
    for task, source in known.items():
        _check_source(config, "training.data" if task == DEFAULT else f"training_tasks.{task}.source", source, error)
    _check_lengths(config, error)


def _check_lengths(config: dict, error) -> None:
    """A recipe's own max_length fits the positions of every backbone it trains (the default recipe's:
    encoders.check)."""
    from .axes import position_limit

    for name, spec in (config.get("recipes") or {}).items():
        lengths = (spec.get("training") or {}).get("max_length") or {}
        for backbone in spec.get("backbones") or _supervised_backbones(config):
            limit = position_limit(config["backbones"][backbone])
            over = {kind: n for kind, n in lengths.items() if limit is not None and n > limit}
            if over:
                raise error(
                    f"recipes.{name}.training.max_length: {over} exceed the position limit of backbone "
                    f"{backbone!r}, {limit} tokens"
                )


def _check_source(config: dict, key: str, source: dict, error) -> None:
    if source["type"] != "bm25_mined":
        return
    for field in ("collection", "query_set"):
        if field not in source:
            raise error(f"{key}.{field}: required for type bm25_mined")
    collections = config["collections"]
    if source["collection"] not in collections:
        raise error(f"{key}.collection: unknown collection {source['collection']!r}")
    if source["query_set"] not in collections[source["collection"]]["query_sets"]:
        raise error(f"{key}.query_set: collection {source['collection']!r} has no query set {source['query_set']!r}")
