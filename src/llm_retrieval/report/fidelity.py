"""Reproduction fidelity: how close our numbers came to the published ones, per table.

Over the cells that have both values (the Avg row excluded): mean and max |ours - published|,
the cells differing by more than the threshold, and how well the retrievers' rankings agree:
Kendall's tau per dataset (ranking the retrievers within it) and overall (over all compared
cells pooled, the scatter of ours vs published).
"""

from __future__ import annotations

import math

from .render import markdown_table
from .tables import Table


def _tau(ours: list[float], paper: list[float]) -> float | None:
    if len(ours) < 2:
        return None
    from scipy import stats  # here, not at import: the DAG build imports this package and not scipy

    tau = stats.kendalltau(ours, paper).statistic
    return None if tau is None or math.isnan(tau) else float(tau)


def fidelity(table: Table, threshold: float = 0.02) -> dict:
    compared = [c for c in table.cells.values() if c.paper is not None]
    diffs = [abs(c.ours - c.paper) for c in compared]
    per_dataset = {}
    for item in table.items:
        cells = [c for c in compared if c.item == item]
        per_dataset[item] = {
            "retrievers": len(cells),
            "kendall_tau": _tau([c.ours for c in cells], [c.paper for c in cells]),
        }
    pearson = None
    if len(compared) >= 2 and len({c.ours for c in compared}) > 1 and len({c.paper for c in compared}) > 1:
        from scipy import stats

        pearson = float(stats.pearsonr([c.ours for c in compared], [c.paper for c in compared]).statistic)
    return {
        "table": table.name,
        "title": table.title,
        "compared_cells": len(compared),
        "mean_abs_diff": sum(diffs) / len(diffs) if diffs else None,
        "max_abs_diff": max(diffs) if diffs else None,
        "threshold": threshold,
        "cells_over_threshold": [
            {"retriever": c.retriever, "item": c.item, "ours": c.ours, "published": c.paper, "diff": c.ours - c.paper}
            for c in sorted(compared, key=lambda c: -abs(c.ours - c.paper))
            if abs(c.ours - c.paper) > threshold
        ],
        "kendall_tau_per_dataset": per_dataset,
        "kendall_tau_overall": _tau([c.ours for c in compared], [c.paper for c in compared]),
        "pearson_r_overall": pearson,
        "not_compared": table.not_compared,
        "published": table.published,
    }


def _num(value, digits=4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def to_markdown(result: dict) -> str:
    lines = [f"## Reproduction fidelity: {result['title']}", ""]
    if not result["compared_cells"]:
        lines.append(
            f"Published numbers: {result['published']}."
            if result.get("published")
            else "No cell of this table has a published counterpart (the study's datasets or columns are "
            "not the paper's)."
        )
    else:
        overall = [
            result["compared_cells"],
            _num(result["mean_abs_diff"]),
            _num(result["max_abs_diff"]),
            f"{len(result['cells_over_threshold'])} (> {result['threshold']})",
            _num(result["kendall_tau_overall"], 3),
            _num(result["pearson_r_overall"], 3),
        ]
        per_dataset = [
            [item, v["retrievers"], _num(v["kendall_tau"], 3)] for item, v in result["kendall_tau_per_dataset"].items()
        ]
        lines += [
            markdown_table(
                [
                    "compared cells",
                    "mean abs diff",
                    "max abs diff",
                    "cells over threshold",
                    "Kendall tau (overall)",
                    "Pearson r",
                ],
                [overall],
            ),
            "",
            markdown_table(["dataset", "retrievers compared", "Kendall tau"], per_dataset),
        ]
        if result["cells_over_threshold"]:
            over = [
                [c["retriever"], c["item"], f"{c['ours']:.4f}", f"{c['published']:.4f}", f"{c['diff']:+.4f}"]
                for c in result["cells_over_threshold"]
            ]
            lines += [
                "",
                f"Cells differing by more than {result['threshold']}:",
                "",
                markdown_table(["retriever", "dataset", "ours", "published", "diff"], over),
            ]
        if result.get("published"):
            lines += ["", f"Published numbers: {result['published']}."]
    if result["not_compared"]:
        lines += ["", f"Not compared: {', '.join(result['not_compared'])}."]
    return "\n".join(lines + [""])
