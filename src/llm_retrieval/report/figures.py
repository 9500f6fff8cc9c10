"""The report's figures, per comparison table, from the table's JSON (``tables.write_table``).

- heatmap: retriever × dataset, our value, and where published values exist, those and the difference;
- scatter: ours vs published, the y = x line, Pearson r and Kendall tau;
- averages: per-retriever averages as bars with their bootstrap 95% CIs;
- win/tie/loss: per query, each retriever against the anchor (Base), per dataset or column.

Each is written as SVG and PNG (matplotlib, Agg backend, no display needed).
"""

from __future__ import annotations

import io
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from ..atomic import atomic_path
from ..evaluation_kinds import display_name
from . import FIGURE_KINDS as KINDS
from .fidelity import fidelity
from .tables import Table

FORMATS = ("svg", "png")
plt.rcParams.update({"svg.hashsalt": "llm-retrieval", "font.size": 9})  # reproducible SVG ids


def _save(fig, stem: Path) -> None:
    for fmt in FORMATS:
        with atomic_path(stem.with_suffix(f".{fmt}")) as tmp:
            buffer = io.BytesIO()
            fig.savefig(
                buffer, format=fmt, dpi=110, bbox_inches="tight", metadata={"Date": None} if fmt == "svg" else None
            )
            Path(tmp).write_bytes(buffer.getvalue())
    plt.close(fig)


def _matrix(table: Table, attr: str) -> np.ndarray:
    """Rows: retrievers; columns: datasets (or the column table's columns)."""
    return np.array(
        [
            [
                getattr(table.cells[(r, i)], attr) if getattr(table.cells[(r, i)], attr) is not None else np.nan
                for i in table.items
            ]
            for r in table.retrievers
        ],
        dtype=float,
    )


LABELLED_CELLS = 16 * 24  # past this many cells a panel shows colours only (labels would not fit at 8 pt)
LABEL_SIZE = 8


def _span(values: np.ndarray, symmetric: bool = False) -> tuple[float, float]:
    """The colour range of ``values`` (NaNs ignored): symmetric about 0 for differences."""
    finite = values[np.isfinite(values)]
    if symmetric:
        top = float(np.abs(finite).max()) if finite.size else 0.0
        top = top or 0.01
        return -top, top
    low, high = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
    return (low - 0.005, high + 0.005) if high - low < 0.01 else (low, high)


def heatmap_figure(table: Table):
    """Ours, and where the table has published values, the published ones and the difference."""
    ours, paper = _matrix(table, "ours"), _matrix(table, "paper")
    published = bool(np.isfinite(paper).any())
    span = _span(np.concatenate([ours.ravel(), paper.ravel()]))
    panels = [("ours", ours, "viridis", span)]
    if published:
        panels += [
            ("published", paper, "viridis", span),
            ("ours − published", ours - paper, "RdBu", _span(ours - paper, symmetric=True)),
        ]
    rows, cols = ours.shape
    labelled = rows * cols <= LABELLED_CELLS
    cell = 0.62 if labelled else min(0.3, 24 / cols)  # inches per column: room for "0.123" at 8 pt
    fig, axes = plt.subplots(
        1,
        len(panels),
        figsize=(len(panels) * (cell * cols + 1.6) + 1.2, 0.36 * rows + 2.2),
        squeeze=False,
        layout="constrained",
    )
    for ax, (title, values, cmap, (low, high)) in zip(axes[0], panels):
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, aspect="auto", vmin=low, vmax=high)
        ax.set_title(title)
        ax.set_xticks(range(cols), table.items, rotation=60, ha="right")
        ax.set_yticks(range(rows), table.retrievers)
        if labelled:
            _label_cells(ax, values, image)
        fig.colorbar(image, ax=ax, shrink=0.8)
    fig.suptitle(
        f"{table.title}: ours, published, difference ('–': no published value)"
        if published
        else f"{table.title} (no published counterpart)"
    )
    return fig


def _label_cells(ax, values: np.ndarray, image) -> None:
    for (y, x), value in np.ndenumerate(values):
        if math.isnan(value):
            ax.text(x, y, "–", ha="center", va="center", fontsize=LABEL_SIZE, color="grey")
            continue
        red, green, blue, _ = image.cmap(image.norm(value))
        dark = 0.299 * red + 0.587 * green + 0.114 * blue < 0.5
        ax.text(
            x,
            y,
            f"{value:.3f}" if abs(value) < 1 else f"{value:.2f}",
            ha="center",
            va="center",
            fontsize=LABEL_SIZE,
            color="white" if dark else "black",
        )


def heatmap(table: Table, stem: Path) -> None:
    _save(heatmap_figure(table), stem)


def scatter(table: Table, stem: Path) -> None:
    result = fidelity(table)
    compared = [c for c in table.cells.values() if c.paper is not None]
    fig, ax = plt.subplots(figsize=(4.6, 4.4))
    for retriever in table.retrievers:
        cells = [c for c in compared if c.retriever == retriever]
        if cells:
            ax.scatter([c.paper for c in cells], [c.ours for c in cells], label=retriever, s=18)
    ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls="--", label="y = x")
    ax.set_xlim(0, 1), ax.set_ylim(0, 1)
    ax.set_xlabel("published"), ax.set_ylabel("ours")

    def fmt(value):
        return "n/a" if value is None else f"{value:.3f}"

    if compared:
        ax.set_title(
            f"{table.title}\nPearson r = {fmt(result['pearson_r_overall'])}, "
            f"Kendall τ = {fmt(result['kendall_tau_overall'])} ({len(compared)} cells)",
            fontsize=8,
        )
        ax.legend(fontsize=6, loc="upper left")
    else:
        ax.set_title(f"{table.title}\nno cell has a published counterpart", fontsize=8)
        ax.text(0.5, 0.5, "not compared", ha="center", va="center", color="grey")
    _save(fig, stem)


def averages(table: Table, stem: Path) -> None:
    """Bars with bootstrap 95% CIs: the Avg row (measure tables) or every column (column tables)."""
    if table.layout == "measure":
        series = {"Avg": [table.averages[r] for r in table.retrievers]}
    else:
        series = {item: [table.cells[(r, item)] for r in table.retrievers] for item in table.items}
    fig, ax = plt.subplots(figsize=(min(11.0, max(4.5, 0.5 * len(table.retrievers) * len(series) + 2)), 3.4))
    width = 0.8 / len(series)
    x = np.arange(len(table.retrievers))
    for k, (name, cells) in enumerate(series.items()):
        means = np.array([c.ours for c in cells])
        low = np.array([c.ci[0] if c.ci else c.ours for c in cells])
        high = np.array([c.ci[1] if c.ci else c.ours for c in cells])
        ax.bar(x + k * width - 0.4 + width / 2, means, width, yerr=[means - low, high - means], capsize=3, label=name)
    ax.set_xticks(x, table.retrievers, rotation=30, ha="right")
    ax.set_ylabel(display_name(table.measure) if table.measure else "value")
    ax.set_title(f"{table.title}: averages with bootstrap 95% CIs", fontsize=8)
    if len(series) > 1:
        ax.legend(fontsize=6)
    _save(fig, stem)


def win_tie_loss(table: Table, stem: Path) -> None:
    others = [r for r in table.retrievers if r != table.anchor]
    n = len(table.items)
    cols = min(n, 4)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 0.3 * len(others) * rows + 1.4 * rows), squeeze=False)
    for ax in axes.flat[n:]:
        ax.axis("off")
    for ax, item in zip(axes.flat, table.items):
        counts = np.array([table.cells[(r, item)].win_tie_loss or (0, 0, 0) for r in others], dtype=float)
        totals = counts.sum(axis=1, keepdims=True)
        share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
        left = np.zeros(len(others))
        for k, (name, color) in enumerate((("win", "#4c9f50"), ("tie", "#cccccc"), ("loss", "#d1495b"))):
            ax.barh(others, share[:, k], left=left, color=color, label=name)
            left += share[:, k]
        ax.set_xlim(0, 1)
        ax.set_title(item, fontsize=8)
        ax.invert_yaxis()
    axes.flat[0].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{table.title}: per-query win / tie / loss against {table.anchor}", fontsize=9)
    fig.tight_layout()
    _save(fig, stem)


def draw_all(table: Table, folder: str | Path) -> list[Path]:
    """Every figure of ``table`` into ``folder`` as <kind>.svg and <kind>.png."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for kind, draw in zip(KINDS, (heatmap, scatter, averages, win_tie_loss)):
        if kind == "win_tie_loss" and table.anchor is None:
            fig, ax = plt.subplots(figsize=(3, 1))
            ax.text(0.5, 0.5, "no anchor backbone", ha="center"), ax.axis("off")
            _save(fig, folder / kind)
            continue
        draw(table, folder / kind)
    return [folder / f"{k}.{f}" for k in KINDS for f in FORMATS]
