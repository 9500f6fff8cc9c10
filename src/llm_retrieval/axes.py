"""Study axes beyond the paper: a setting evaluated at several values of one knob.

A setting (``zeroshot`` / ``supervised``) may list ``axes:`` in the config, each a list
of values; every value is a *setting variant* named ``<setting>.<axis>-<value>`` that
runs through the same encode -> search -> evaluate rules as the setting itself:

- ``steps`` (supervised): the LoRA adapter exported after that many optimizer steps
  (0 = the untrained backbone in the supervised format); the learning curve.
- ``passage_tokens``: the maximum passage length at encoding time (zero-shot: text
  tokens; supervised: the whole sequence, as ``training.max_length.passage``).
- ``instruction``: queries carry their collection's task instruction (``true``) or one of a named set of
  ``collections.<c>.instructions`` (e.g. ``id`` / ``ood``), chosen per query by its id.
- ``recipe`` (supervised): the retrievers of other training recipes (recipes.py), against the
  default one (the setting itself).

In the supervised setting any other axis may run on several recipes' retrievers
(``{values: [...], recipes: [default, instructed]}``): the variant of recipe ``r`` is named
``supervised.recipe-<r>.<axis>-<value>`` (the default recipe's keeps the plain name).

A variant is encoded in full (its queries come with its first corpus shard, one model load).
Size and encoder family are not axes: they are backbones (config entries).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from . import recipes as recipe_model
from .recipes import DEFAULT

AXES: dict[str, dict[str, Any]] = {
    "steps": {"settings": ("supervised",), "label": "training steps"},
    "passage_tokens": {"settings": ("zeroshot", "supervised"), "label": "max passage tokens"},
    "instruction": {"settings": ("zeroshot", "supervised"), "label": "task instruction"},
    "recipe": {"settings": ("supervised",), "label": "training recipe"},
}
CURVE_MEASURES = ("mrr_10", "ndcg_cut_10")


class AxisError(ValueError):
    """An axis value no backbone or collection of the setting supports; names the config key."""


@dataclass(frozen=True)
class Variant:
    name: str  # e.g. supervised.steps-200
    base: str  # supervised
    axis: str  # steps
    value: Any  # 200
    backbones: tuple | None = None  # a narrower scope than the setting's (None: all of them)
    collections: tuple | None = None
    recipe: str = DEFAULT  # whose trained retriever it evaluates (supervised)


def axis_spec(raw) -> dict:
    """An axis is a list of values, or ``{values: [...], backbones: [...], collections: [...]}`` to run
    it on part of the setting only (the recipe axis: and ``baseline:``, what its deltas are against; the schema
    fills it; the list form is against the default recipe, the setting itself)."""
    if isinstance(raw, dict):
        return {
            "values": list(raw["values"]),
            "backbones": raw.get("backbones"),
            "collections": raw.get("collections"),
            "recipes": list(raw.get("recipes") or [DEFAULT]),
            "baseline": raw.get("baseline", DEFAULT),
        }
    return {"values": list(raw), "backbones": None, "collections": None, "recipes": [DEFAULT], "baseline": DEFAULT}


def baseline_of(config: dict, base: str, collection: str) -> str:
    """The recipe whose retriever the recipe axis's ``delta_*`` on ``collection`` are against."""
    baseline = axis_spec(config["settings"][base]["axes"]["recipe"])["baseline"]
    return baseline.get(collection, DEFAULT) if isinstance(baseline, dict) else baseline


def recipe_setting(base: str, recipe: str) -> str:
    """The setting name of a recipe's retriever: the setting itself for the default recipe."""
    return base if recipe == DEFAULT else f"{base}.recipe-{recipe}"


def value_name(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def variants(settings: dict) -> list[Variant]:
    out = []
    for base, spec in settings.items():
        for axis, raw in (spec.get("axes") or {}).items():
            scope = axis_spec(raw)
            narrowed = (
                tuple(scope["backbones"]) if scope["backbones"] else None,
                tuple(scope["collections"]) if scope["collections"] else None,
            )
            for value in scope["values"]:
                if axis == "recipe":
                    out.append(Variant(recipe_setting(base, value), base, axis, value, *narrowed, recipe=value))
                    continue
                for recipe in scope["recipes"]:
                    out.append(
                        Variant(
                            f"{recipe_setting(base, recipe)}.{axis}-{value_name(value)}",
                            base,
                            axis,
                            value,
                            *narrowed,
                            recipe=recipe,
                        )
                    )
    return out


def scope(config: dict, setting: str) -> tuple[list[str], list[str]]:
    """(backbones, collections) a setting or variant runs on."""
    spec = config["settings"][base_of(setting)]
    backbones, collections = list(spec["backbones"]), list(spec["collections"])
    variant = variant_of(config, setting)
    if variant and variant.backbones:
        backbones = [b for b in backbones if b in variant.backbones]
    if variant and variant.collections:
        collections = [c for c in collections if c in variant.collections]
    if variant and variant.recipe != DEFAULT:
        trained = recipe_model.recipe(config, variant.recipe).backbones
        backbones = [b for b in backbones if b in trained]
    return backbones, collections


def recipe_of(config: dict, setting: str) -> str:
    """The recipe whose retriever a supervised setting or variant evaluates."""
    variant = variant_of(config, setting)
    return variant.recipe if variant else DEFAULT


def base_of(setting: str) -> str:
    return setting.split(".", 1)[0]


def check(config: dict, error=AxisError) -> None:
    """Config-level checks of every axis value (raised as ``error`` naming the key)."""
    for base, spec in (config.get("settings") or {}).items():
        for axis, raw in (spec.get("axes") or {}).items():
            key = f"settings.{base}.axes.{axis}"
            narrowed = axis_spec(raw)
            values = narrowed["values"]
            for part in ("backbones", "collections"):
                outside = [x for x in narrowed[part] or [] if x not in spec[part]]
                if outside:
                    raise error(f"{key}.{part}: {outside} not among settings.{base}.{part}")
            scoped = {**spec, **{part: narrowed[part] for part in ("backbones", "collections") if narrowed[part]}}
            if axis not in AXES:
                raise error(f"{key}: unknown axis (known: {', '.join(AXES)})")
            if base not in AXES[axis]["settings"]:
                raise error(f"{key}: the {axis} axis applies to {' / '.join(AXES[axis]['settings'])} only")
            if len(set(map(value_name, values))) != len(values):
                raise error(f"{key}: repeated value")
            _check_recipes(config, base, spec, axis, narrowed, key, error)
            CHECKS.get(axis, lambda *a: None)(config, spec, scoped, values, key, error)


def _check_recipes(config: dict, base: str, spec: dict, axis: str, narrowed: dict, key: str, error) -> None:
    """A recipe axis names known recipes; another axis's ``recipes:`` names the default or a recipe axis value."""
    named = narrowed["values"] if axis == "recipe" else narrowed["recipes"]
    if axis != "recipe" and named != [DEFAULT] and base != "supervised":
        raise error(f"{key}.recipes: only the supervised setting has recipes")
    known = recipe_model.recipes(config)
    unknown = [r for r in named if r not in known]
    if unknown:
        raise error(f"{key}: unknown recipe(s) {', '.join(map(str, unknown))} (known: {', '.join(known)})")
    if axis == "recipe":
        _check_baseline(known, spec, narrowed, key, error)
    else:
        compared = axis_spec((spec.get("axes") or {}).get("recipe") or [])["values"]
        missing = [r for r in named if r != DEFAULT and r not in compared]
        if missing:
            raise error(
                f"{key}.recipes: {', '.join(missing)} not among settings.{base}.axes.recipe (the axis compares "
                "each recipe's retriever with and without it)"
            )


def _check_baseline(known: dict, spec: dict, narrowed: dict, key: str, error) -> None:
    """The recipe axis's baseline: a known recipe whose retriever the axis evaluates (the default one or a value),
    per collection of the axis's scope."""
    baseline = narrowed["baseline"]
    named = baseline.items() if isinstance(baseline, dict) else [(None, baseline)]
    evaluated = [DEFAULT, *narrowed["values"]]
    for collection, recipe in named:
        where = f"{key}.baseline" + (f".{collection}" if collection else "")
        if collection and collection not in (narrowed["collections"] or spec["collections"]):
            raise error(f"{where}: collection {collection!r} is not among the axis's collections")
        if recipe not in known:
            raise error(f"{where}: unknown recipe {recipe!r} (known: {', '.join(known)})")
        if recipe not in evaluated:
            raise error(f"{where}: {recipe!r} is not among {key}.values (its retriever must be evaluated: add it)")


def _check_steps(config, spec, scoped, values, key, error) -> None:
    # Every (recipe, backbone) training run exports the adapters at these steps.
    for name in recipe_model.recipes(config):
        for backbone in spec["backbones"]:
            steps = recipe_model.training_for(config, name, backbone).get("max_steps")
            over = [v for v in values if steps is not None and v > steps]
            if over:
                where = (
                    f"backbones.{backbone}.training.max_steps"
                    if "max_steps" in (config["backbones"][backbone].get("training") or {})
                    else "training.max_steps"
                    if name == DEFAULT
                    else f"recipes.{name}.training.max_steps"
                )
                raise error(f"{key}: steps {over} exceed {where}={steps}")


def _check_instruction(config, spec, scoped, values, key, error) -> None:
    for value in values:
        if value is True:
            missing = [c for c in scoped["collections"] if not config["collections"][c].get("instruction")]
            if missing:
                raise error(f"{key}: collections without an `instruction`: {', '.join(missing)}")
        else:
            missing = [
                c for c in scoped["collections"] if value not in (config["collections"][c].get("instructions") or {})
            ]
            if missing:
                raise error(
                    f"{key}: collections without an instruction set {value!r} "
                    f"(collections.<c>.instructions.{value}): {', '.join(missing)}"
                )


def _check_passage_tokens(config, spec, scoped, values, key, error) -> None:
    for backbone in scoped["backbones"]:
        limit = position_limit(config["backbones"][backbone])
        over = [v for v in values if limit is not None and v > limit]
        if over:
            raise error(f"{key}: {over} exceed backbone {backbone!r}'s position limit of {limit} tokens")


CHECKS = {"steps": _check_steps, "instruction": _check_instruction, "passage_tokens": _check_passage_tokens}


def position_limit(backbone: dict) -> int | None:
    """Longest input the backbone's positions allow, as far as the DAG build can know: a built model's
    ``build``, a local or packaged folder's config.json, a hub id's published shape
    (resources/reference/backbone_configs.json) or recorded limit (resources/position_limits.tsv);
    None for relative positions (T5) or an unknown hub model (checked after its download)."""
    from . import encoders

    family = encoders.family(backbone["architecture"])
    if backbone["architecture"] != "sentence_transformers" and not family.position_keys:
        return None
    if "build" in backbone:
        return backbone["build"].get("max_position_embeddings")
    if "package" in backbone or "path" in backbone:
        from .backbones import package_folder

        folder = package_folder(backbone["package"]) if "package" in backbone else Path(backbone["path"])
        return encoders.folder_position_limit({"architecture": backbone["architecture"], "path": str(folder)})
    from .model_resources import known_shape

    shape = known_shape(backbone.get("hub_id", ""))
    if shape:
        return shape.get("max_position_embeddings")
    return recorded_position_limits().get(backbone.get("hub_id", ""))


POSITION_LIMITS = Path(__file__).resolve().parents[2] / "resources" / "position_limits.tsv"


@lru_cache(maxsize=1)
def recorded_position_limits() -> dict[str, int]:
    rows = [
        line.split("\t")
        for line in POSITION_LIMITS.read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    ]
    return {hub_id: int(limit) for hub_id, limit in rows[1:]}


def variant_of(config: dict, setting: str) -> Variant | None:
    for variant in variants(config.get("settings") or {}):
        if variant.name == setting:
            return variant
    return None


def encoding_for(config: dict, setting: str, collection: str) -> dict:
    """The ``encoding`` section as this setting (or variant) uses it on ``collection``; an instruction
    variant carries the collection's task sentence (or the named set's sentences) as ``encoding.instruction``,
    a named set's passage side as ``encoding.passage_instruction``."""
    encoding = copy.deepcopy(config["encoding"])
    variant = variant_of(config, setting)
    if variant and variant.axis == "passage_tokens" and variant.base == "zeroshot":
        encoding["max_text_tokens"] = {**encoding["max_text_tokens"], "passage": variant.value}
    if variant and variant.axis == "instruction":
        sides = instruction_sides(config, variant, collection)
        encoding.update(
            {
                key: sides[kind]
                for kind, key in (("query", "instruction"), ("passage", "passage_instruction"))
                if kind in sides
            }
        )
    return encoding


def instruction_sides(config: dict, variant: Variant, collection: str) -> dict:
    """An instruction variant's sentences on a collection, by side (query, passage): the collection's task sentence
    (``true``: queries only), or a named set (a sentence or list: queries only; or ``{query:, passage:}``)."""
    spec = config["collections"][collection]
    chosen = spec["instruction"] if variant.value is True else spec["instructions"][variant.value]
    return dict(chosen) if isinstance(chosen, dict) else {"query": chosen}


def corpus_setting(config: dict, setting: str, collection: str) -> str:
    """The setting whose corpus encoding a setting (or variant) searches on ``collection``: its own, but for an
    instruction variant, whose corpus is encoded as its retriever's own setting's (the recipe's, ``zeroshot``)
    when its set has no passage side, else as the first instruction variant's with the same passage side."""
    variant = variant_of(config, setting)
    if not variant or variant.axis != "instruction":
        return setting
    passage = _passage_side(config, variant, collection)
    if not passage:
        return recipe_setting(variant.base, variant.recipe)
    for other in variants(config["settings"]):
        same_retriever = (other.axis, other.base, other.recipe) == ("instruction", variant.base, variant.recipe)
        if same_retriever and _passage_side(config, other, collection) == passage:
            return other.name
    return setting


def _passage_side(config: dict, variant: Variant, collection: str) -> tuple[str, ...]:
    passage = instruction_sides(config, variant, collection).get("passage") or ()
    return (passage,) if isinstance(passage, str) else tuple(passage)


def max_length_for(config: dict, setting: str) -> dict | None:
    """Whole-sequence limits of the supervised format (as in training); None for zero-shot."""
    if base_of(setting) != "supervised":
        return None
    variant = variant_of(config, setting)
    max_length = dict(recipe_model.recipe(config, variant.recipe if variant else DEFAULT).training["max_length"])
    if variant and variant.axis == "passage_tokens":
        max_length["passage"] = variant.value
    return max_length


def adapter_step(config: dict, setting: str) -> int | None:
    variant = variant_of(config, setting)
    return variant.value if variant and variant.axis == "steps" else None


def training_for(config: dict, backbone: str, recipe: str = DEFAULT) -> dict:
    """The ``training`` section for one (recipe, backbone): its own overrides (``backbones.<b>.training``) applied."""
    return recipe_model.training_for(config, recipe, backbone)


def snapshot_steps(config: dict) -> list[int]:
    """Steps at which training exports an adapter (the supervised learning curve)."""
    spec = (config.get("settings") or {}).get("supervised") or {}
    steps = (spec.get("axes") or {}).get("steps")
    return sorted(axis_spec(steps)["values"]) if steps else []


def axis_tables(config: dict) -> list[tuple[str, str]]:
    return [(base, axis) for base, spec in (config.get("settings") or {}).items() for axis in (spec.get("axes") or {})]


# --- the axis table and curve -------------------------------------------------------------


def axis_recipes(config: dict, base: str, axis: str) -> list[str]:
    """The recipes whose retrievers an axis runs on (the recipe axis: the default one, its baseline)."""
    return [DEFAULT] if axis == "recipe" else axis_spec(config["settings"][base]["axes"][axis])["recipes"]


def axis_points(config: dict, base: str, axis: str, recipe: str = DEFAULT) -> list[tuple[str, Any]]:
    """(setting name, x value) along one axis for one recipe's retriever, the setting itself included where it
    is a point."""
    values = axis_spec(config["settings"][base]["axes"][axis])["values"]
    own = recipe_setting(base, recipe)
    if axis == "recipe":
        return [(base, DEFAULT)] + [(recipe_setting(base, v), v) for v in values]
    points = [(f"{own}.{axis}-{value_name(v)}", v) for v in values]
    if axis == "steps":
        final = recipe_model.recipe(config, recipe).training.get("max_steps") if base == "supervised" else None
        points.append((own, final if final is not None else "final"))
    elif axis == "passage_tokens":
        length = (
            max_length_for(config, own)["passage"]
            if base == "supervised"
            else config["encoding"]["max_text_tokens"]["passage"]
        )
        points.append((own, length))
        points.sort(key=lambda p: p[1])
    else:
        points.insert(0, (own, False))
    return points


def axis_settings(config: dict, base: str, axis: str) -> list[str]:
    """Every setting an axis table reads."""
    return [s for r in axis_recipes(config, base, axis) for s, _ in axis_points(config, base, axis, r)]
