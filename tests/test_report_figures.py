"""Heatmaps draw only the panels that have data, with readable cell labels and colours from the data."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pytest

from llm_retrieval.report.figures import LABEL_SIZE, LABELLED_CELLS, heatmap_figure
from llm_retrieval.report.tables import Cell, Table


def table_of(values: dict[str, list[float]], published: dict[str, list[float]] | None = None, items=None) -> Table:
    items = items or [f"set{i}" for i in range(len(next(iter(values.values()))))]
    table = Table(name="t", title="T", layout="measure", measure="ndcg_cut_10", retrievers=list(values),
                  items=items, anchor=None, test="ttest", alpha=0.05)  # fmt: skip
    for retriever, row in values.items():
        for k, item in enumerate(items):
            paper = published[retriever][k] if published and retriever in published else None
            table.cells[(retriever, item)] = Cell(retriever, item, row[k], paper=paper)
    return table


def panels(fig) -> list:
    """The heatmap panels (axes with an image), not the colour bars."""
    return [ax for ax in fig.axes if ax.images]


def test_a_table_without_published_values_draws_one_panel_coloured_over_its_own_range():
    fig = heatmap_figure(table_of({"BM25": [0.2, 0.4], "Base": [0.3, 0.6]}))
    (ours,) = panels(fig)
    assert ours.get_title() == "ours"
    assert ours.images[0].get_clim() == pytest.approx((0.2, 0.6))
    plt.close(fig)


def test_a_table_with_published_values_draws_ours_published_and_the_difference():
    fig = heatmap_figure(table_of({"BM25": [0.2, 0.4], "Base": [0.3, 0.6]}, published={"BM25": [0.25, 0.5]}))
    ours, paper, difference = panels(fig)
    assert [ax.get_title() for ax in (ours, paper, difference)] == ["ours", "published", "ours − published"]
    assert ours.images[0].get_clim() == paper.images[0].get_clim() == pytest.approx((0.2, 0.6))
    assert difference.images[0].get_clim() == pytest.approx((-0.1, 0.1))  # the largest |ours − published|
    plt.close(fig)


def test_cell_labels_are_readable_and_left_out_past_a_size():
    small = heatmap_figure(table_of({"BM25": [0.2, 0.4], "Base": [0.3, 0.6]}))
    labels = panels(small)[0].texts
    assert sorted(t.get_text() for t in labels) == ["0.200", "0.300", "0.400", "0.600"]
    assert {t.get_fontsize() for t in labels} == {LABEL_SIZE} and LABEL_SIZE >= 8
    columns = LABELLED_CELLS // 2 + 1
    large = heatmap_figure(table_of({"BM25": [0.1] * columns, "Base": [0.2] * columns}))
    assert len(panels(large)[0].texts) == 0
    plt.close(small), plt.close(large)
