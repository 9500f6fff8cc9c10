"""Axis tables and curves (docs/axes.md): one Markdown + CSV table and one SVG curve per study axis,
from the metrics of the setting's variants; the axes themselves are planned in ``llm_retrieval.axes``."""

from __future__ import annotations

import csv
import io

from ..atomic import write_text
from ..axes import AXES, CURVE_MEASURES, axis_points, axis_recipes, axis_spec, baseline_of, value_name
from ..evaluation_kinds import RETRIEVAL, STS, display_name
from ..recipes import DEFAULT
from .render import markdown_table

# What an axis table shows of a collection's metrics, by its evaluation kind (STS: MTEB's main score).
KIND_MEASURES = {RETRIEVAL: CURVE_MEASURES, STS: ("cosine_spearman",)}


def axis_rows(study, base: str, axis: str, load) -> list[dict]:
    """One row per (recipe, backbone, collection, query set, x): the curve measures, and on the recipe axis each
    recipe's difference from the collection's baseline recipe (``baseline:``, default: the default recipe).
    ``load(setting, backbone, collection, query_set)`` returns a metrics dict."""
    rows = []
    for recipe in axis_recipes(study.config, base, axis):
        points = axis_points(study.config, base, axis, recipe)
        backbones, collections = axis_scope(study.config, base, axis)
        for backbone in backbones:
            for collection in collections:
                for query_set in study.eval_query_sets(collection):
                    point_rows = _point_rows(study, axis, recipe, points, load, backbone, collection, query_set)
                    if axis == "recipe":
                        _add_deltas(point_rows, baseline_of(study.config, base, collection))
                    rows += point_rows
    return rows


def _add_deltas(rows: list[dict], baseline: str) -> None:
    """Each recipe's difference from the baseline recipe's row (blank where the baseline does not train the
    backbone)."""
    reference = next((r for r in rows if r["recipe"] == baseline), None)
    for row in rows:
        row["baseline"] = baseline
        measures = [m for kind in KIND_MEASURES.values() for m in kind if m in row]
        row.update({f"delta_{m}": row[m] - reference[m] if reference else "" for m in measures})


def axis_measures(study, base: str, axis: str) -> list[str]:
    """The measures of an axis table: those of every evaluation kind among its collections."""
    kinds = {study.collection_kind(c) for c in axis_scope(study.config, base, axis)[1]}
    return [m for kind, measures in KIND_MEASURES.items() if kind in kinds for m in measures]


def axis_scope(config: dict, base: str, axis: str) -> tuple[list[str], list[str]]:
    """(backbones, collections) an axis runs on: its setting's, narrowed by the axis's own scope (a recipe's
    retriever may train fewer backbones: its points are skipped there)."""
    spec, narrowed = config["settings"][base], axis_spec(config["settings"][base]["axes"][axis])
    return (
        [b for b in spec["backbones"] if not narrowed["backbones"] or b in narrowed["backbones"]],
        [c for c in spec["collections"] if not narrowed["collections"] or c in narrowed["collections"]],
    )


def _point_rows(study, axis, recipe, points, load, backbone, collection, query_set) -> list[dict]:
    rows = []
    for setting, x in points:
        if backbone not in study.backbones_of(setting):  # a recipe that does not train this backbone
            continue
        aggregate = load(setting, backbone, collection, query_set)["aggregate"]
        row = {
            "recipe": recipe,
            "backbone": study.backbone(backbone)["label"],
            "collection": study.collection(collection)["label"],
            "query_set": query_set,
            axis: value_name(x),
            **{m: aggregate[m] for m in KIND_MEASURES[study.collection_kind(collection)]},
        }
        rows.append(row)
    return rows


def axis_header(axis: str, measures=CURVE_MEASURES) -> list[str]:
    deltas = ["baseline", *(f"delta_{m}" for m in measures)] if axis == "recipe" else []
    # On the recipe axis the recipe is the axis's own column.
    first = [] if axis == "recipe" else ["recipe"]
    return [*first, "backbone", "collection", "query_set", axis, *measures, *deltas]


def write_axis_outputs(study, base: str, axis: str, load, md_path, csv_path, svg_path) -> None:
    rows = axis_rows(study, base, axis, load)
    measures = axis_measures(study, base, axis)
    header = axis_header(axis, measures)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    # A cell of another kind's measure (an STS row's MRR@10) stays blank.
    printed = [[r.get(h, "") if not isinstance(r.get(h), float) else f"{r[h]:.4f}" for h in header] for r in rows]
    writer.writerows(printed)
    write_text(csv_path, buffer.getvalue())
    title = f"{base}: {', '.join(measures)} against {AXES[axis]['label']}"
    write_text(md_path, "\n".join([f"## {title}", "", markdown_table(header, printed), ""]))
    write_text(svg_path, _curve_svg(rows, axis, title, measures))


def _curve_svg(rows: list[dict], axis: str, title: str, measures) -> str:
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, panels = plt.subplots(1, len(measures), figsize=(5 * len(measures), 3.6), squeeze=False)
    series: dict[tuple, list] = {}
    for r in rows:
        retriever = DEFAULT if axis == "recipe" else r["recipe"]  # one curve across the recipes
        series.setdefault((retriever, r["backbone"], r["collection"], r["query_set"]), []).append(r)
    for panel, measure in zip(panels[0], measures):
        for (recipe, backbone, collection, query_set), points in series.items():
            if measure not in points[0]:  # a collection of another kind
                continue
            labels = [p[axis] for p in points]
            numeric = all(x.isdigit() for x in labels)
            xs = [int(x) for x in labels] if numeric else list(range(len(labels)))
            label = f"{backbone} / {collection} / {query_set}" + (f" ({recipe})" if recipe != DEFAULT else "")
            panel.plot(xs, [p[measure] for p in points], marker="o", label=label)
            if not numeric:
                panel.set_xticks(xs, labels)
        panel.set_xlabel(AXES[axis]["label"])
        panel.set_ylabel(display_name(measure))
        panel.grid(alpha=0.3)
    next((p for p in panels[0] if p.lines), panels[0][0]).legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    out = io.StringIO()
    fig.savefig(out, format="svg")
    plt.close(fig)
    return out.getvalue()
