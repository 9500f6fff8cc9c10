"""Study axes beyond the paper: a setting evaluated at several values of one knob.

A setting (``zeroshot`` / ``supervised``) may list ``axes:`` in the config, each a list
of values; every value is a *setting variant* named ``<setting>.<axis>-<value>`` that
runs through the same encode -> search -> evaluate rules as the setting itself:

- ``steps`` (supervised): the LoRA adapter exported after that many optimizer steps
  (0 = the untrained backbone in the supervised format); the learning curve.
- ``passage_tokens``: the maximum passage length at encoding time (zero-shot: text
  tokens; supervised: the whole sequence, as ``training.max_length.passage``).
- ``instruction`` (``true``): queries carry their collection's task instruction.

A variant is encoded in full (its queries come with its first corpus shard, one model load).
Size and encoder family are not axes: they are backbones (config entries).
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .evaluation_kinds import display_name

AXES: dict[str, dict[str, Any]] = {
    "steps": {"settings": ("supervised",), "label": "training steps"},
    "passage_tokens": {"settings": ("zeroshot", "supervised"), "label": "max passage tokens"},
    "instruction": {"settings": ("zeroshot", "supervised"), "label": "task instruction"},
}
CURVE_MEASURES = ("mrr_10", "ndcg_cut_10")


class AxisError(ValueError):
    """An axis value no backbone or collection of the setting supports; names the config key."""


@dataclass(frozen=True)
class Variant:
    name: str     # e.g. supervised.steps-200
    base: str     # supervised
    axis: str     # steps
    value: Any    # 200
    backbones: tuple | None = None    # a narrower scope than the setting's (None: all of them)
    collections: tuple | None = None


def axis_spec(raw) -> dict:
    """An axis is a list of values, or ``{values: [...], backbones: [...], collections: [...]}`` to run
    it on part of the setting only."""
    if isinstance(raw, dict):
        return {"values": list(raw["values"]), "backbones": raw.get("backbones"), "collections": raw.get("collections")}
    return {"values": list(raw), "backbones": None, "collections": None}


def value_name(value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    return str(value)


def variants(settings: dict) -> list[Variant]:
    out = []
    for base, spec in settings.items():
        for axis, raw in (spec.get("axes") or {}).items():
            scope = axis_spec(raw)
            for value in scope["values"]:
                out.append(Variant(f"{base}.{axis}-{value_name(value)}", base, axis, value,
                                   tuple(scope["backbones"]) if scope["backbones"] else None,
                                   tuple(scope["collections"]) if scope["collections"] else None))
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
    return backbones, collections


def base_of(setting: str) -> str:
    return setting.split(".", 1)[0]


def check(config: dict, error=AxisError) -> None:
    """Config-level checks of every axis value (raised as ``error`` naming the key)."""
    training = config.get("training") or {}
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
            if axis == "steps":
                # Every supervised backbone's run exports the adapters at these steps.
                for backbone in spec["backbones"]:
                    steps = training_for(config, backbone).get("max_steps") if training else None
                    over = [v for v in values if steps is not None and v > steps]
                    if over:
                        where = ("training.max_steps" if "max_steps" not in (config["backbones"][backbone].get("training")
                                                                             or {}) else f"backbones.{backbone}.training.max_steps")
                        raise error(f"{key}: steps {over} exceed {where}={steps}")
            if axis == "instruction":
                if values != [True]:
                    raise error(f"{key}: list [true] (the setting itself is the run without instructions)")
                missing = [c for c in scoped["collections"] if not config["collections"][c].get("instruction")]
                if missing:
                    raise error(f"{key}: collections without an `instruction`: {', '.join(missing)}")
            if axis == "passage_tokens":
                for backbone in scoped["backbones"]:
                    limit = position_limit(config["backbones"][backbone])
                    over = [v for v in values if limit is not None and v > limit]
                    if over:
                        raise error(f"{key}: {over} exceed backbone {backbone!r}'s position limit of {limit} tokens")


def position_limit(backbone: dict) -> int | None:
    """Longest input the backbone's positions allow, when the config says (built models, known shapes)."""
    if "build" in backbone:
        return backbone["build"].get("max_position_embeddings")
    from .model_resources import known_shape

    shape = known_shape(backbone.get("hub_id", ""))
    return shape.get("max_position_embeddings") if shape else None


def variant_of(config: dict, setting: str) -> Variant | None:
    for variant in variants(config.get("settings") or {}):
        if variant.name == setting:
            return variant
    return None


def encoding_for(config: dict, setting: str, collection: str) -> dict:
    """The ``encoding`` section as this setting (or variant) uses it on ``collection``; an instruction
    variant carries the collection's task sentence as ``encoding.instruction``."""
    encoding = copy.deepcopy(config["encoding"])
    variant = variant_of(config, setting)
    if variant and variant.axis == "passage_tokens" and variant.base == "zeroshot":
        encoding["max_text_tokens"] = {**encoding["max_text_tokens"], "passage": variant.value}
    if variant and variant.axis == "instruction":
        encoding["instruction"] = config["collections"][collection]["instruction"]
    return encoding


def max_length_for(config: dict, setting: str) -> dict | None:
    """Whole-sequence limits of the supervised format (as in training); None for zero-shot."""
    if base_of(setting) != "supervised":
        return None
    max_length = dict(config["training"]["max_length"])
    variant = variant_of(config, setting)
    if variant and variant.axis == "passage_tokens":
        max_length["passage"] = variant.value
    return max_length


def adapter_step(config: dict, setting: str) -> int | None:
    variant = variant_of(config, setting)
    return variant.value if variant and variant.axis == "steps" else None


def training_for(config: dict, backbone: str) -> dict:
    """The ``training`` section for one backbone: its own overrides (``backbones.<b>.training``) applied."""
    return {**config["training"], **(config["backbones"][backbone].get("training") or {})}


def snapshot_steps(config: dict) -> list[int]:
    """Steps at which training exports an adapter (the supervised learning curve)."""
    spec = (config.get("settings") or {}).get("supervised") or {}
    steps = (spec.get("axes") or {}).get("steps")
    return sorted(axis_spec(steps)["values"]) if steps else []


def axis_tables(config: dict) -> list[tuple[str, str]]:
    return [(base, axis) for base, spec in (config.get("settings") or {}).items() for axis in (spec.get("axes") or {})]


# --- the axis table and curve -------------------------------------------------------------

def axis_points(config: dict, base: str, axis: str) -> list[tuple[str, Any]]:
    """(setting name, x value) along one axis, the setting itself included where it is a point."""
    values = axis_spec(config["settings"][base]["axes"][axis])["values"]
    points = [(f"{base}.{axis}-{value_name(v)}", v) for v in values]
    if axis == "steps":
        final = (config.get("training") or {}).get("max_steps")
        points.append((base, final if final is not None else "final"))
    elif axis == "passage_tokens":
        own = max_length_for(config, base)["passage"] if base == "supervised" else \
            config["encoding"]["max_text_tokens"]["passage"]
        points.append((base, own))
        points.sort(key=lambda p: p[1])
    else:
        points.insert(0, (base, False))
    return points


def axis_rows(study, base: str, axis: str, load) -> list[dict]:
    """One row per (backbone, collection, query set, x): the curve measures. ``load(setting, backbone,
    collection, query_set)`` returns a metrics dict."""
    rows = []
    first_variant = axis_points(study.config, base, axis)[0][0]
    first_variant = first_variant if first_variant != base else axis_points(study.config, base, axis)[1][0]
    backbones, collections = scope(study.config, first_variant)  # the axis's scope (all variants share it)
    for backbone in backbones:
        for collection in collections:
            for query_set in study.eval_query_sets(collection):
                for setting, x in axis_points(study.config, base, axis):
                    aggregate = load(setting, backbone, collection, query_set)["aggregate"]
                    rows.append({"backbone": study.backbone(backbone)["label"], "collection":
                                 study.collection(collection)["label"], "query_set": query_set, axis: value_name(x),
                                 **{m: aggregate[m] for m in CURVE_MEASURES}})
    return rows


def write_axis_outputs(study, base: str, axis: str, load, md_path, csv_path, svg_path) -> None:
    import csv
    import io

    from .atomic import write_text

    rows = axis_rows(study, base, axis, load)
    header = ["backbone", "collection", "query_set", axis, *CURVE_MEASURES]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([[r[h] if not isinstance(r[h], float) else f"{r[h]:.4f}" for h in header] for r in rows])
    write_text(csv_path, buffer.getvalue())
    title = f"{base}: {', '.join(CURVE_MEASURES)} against {AXES[axis]['label']}"
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r[h] if not isinstance(r[h], float) else f"{r[h]:.4f}" for h in header) + " |"
              for r in rows]
    write_text(md_path, "\n".join(lines + [""]))
    write_text(svg_path, _curve_svg(rows, axis, title))


def _curve_svg(rows: list[dict], axis: str, title: str) -> str:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, panels = plt.subplots(1, len(CURVE_MEASURES), figsize=(5 * len(CURVE_MEASURES), 3.6), squeeze=False)
    series: dict[tuple, list] = {}
    for r in rows:
        series.setdefault((r["backbone"], r["collection"], r["query_set"]), []).append(r)
    for panel, measure in zip(panels[0], CURVE_MEASURES):
        for (backbone, collection, query_set), points in series.items():
            labels = [p[axis] for p in points]
            numeric = all(x.isdigit() for x in labels)
            xs = [int(x) for x in labels] if numeric else list(range(len(labels)))
            panel.plot(xs, [p[measure] for p in points], marker="o", label=f"{backbone} / {collection} / {query_set}")
            if not numeric:
                panel.set_xticks(xs, labels)
        panel.set_xlabel(AXES[axis]["label"])
        panel.set_ylabel(display_name(measure))
        panel.grid(alpha=0.3)
    panels[0][0].legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    return out.getvalue()
