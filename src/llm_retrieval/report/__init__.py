"""The study's report: comparison tables with significance, reproduction fidelity, figures, cost, summary.

- ``tables``: the paper's tables (md / csv / html / json) with paired tests against Base, Holm, CIs;
- ``significance``: the tests, Holm's correction, bootstrap intervals;
- ``reference``: the published tables, read and checked;
- ``fidelity``: how close our numbers are to the published ones;
- ``figures``, ``cost``, ``summary``: the figures, the cost table, the opening paragraph.
"""
from .reference import ReferenceTableError, read_reference
from .significance import QuerySetMismatch
FIGURE_KINDS = ("heatmap", "scatter", "averages", "win_tie_loss")  # figures.draw_all writes <kind>.svg / .png
PIN_FILES = ("requirements.txt", "requirements-test.txt", "requirements.lock", "requirements-lock.txt", "pylock.toml",
             "uv.lock", "envs/retrieval.yaml")  # pinned revisions shown in the report where present

from . import fidelity  # noqa: E402
from .tables import (Cell, Table, build, build_table, load_metrics, pins_note, read_table,  # noqa: E402
                     table_collections, table_units, write_table)

__all__ = ["FIGURE_KINDS", "PIN_FILES", "Cell", "QuerySetMismatch", "ReferenceTableError", "Table", "build",
           "build_table", "load_metrics", "pins_note", "read_reference", "read_table", "table_collections",
           "table_units", "write_table"]
