"""The study's report: comparison tables with significance, reproduction fidelity, figures, cost, summary.

- ``tables``: the paper's tables (md / csv / html / json) with paired tests against Base, Holm, CIs;
- ``significance``: the tests, Holm's correction, bootstrap intervals;
- ``reference``: the published tables, read and checked;
- ``fidelity``: how close our numbers are to the published ones;
- ``figures``, ``cost``, ``summary``: the figures, the cost table, the opening paragraph.
"""
from .reference import ReferenceTableError, read_reference
from .significance import QuerySetMismatch
from . import fidelity
from .tables import (Cell, Table, build, build_table, load_metrics, pins_note, read_table, table_collections,
                     table_units, write_table)

__all__ = ["Cell", "QuerySetMismatch", "ReferenceTableError", "Table", "build",
           "build_table", "load_metrics", "pins_note", "read_reference", "read_table", "table_collections",
           "table_units", "write_table"]
