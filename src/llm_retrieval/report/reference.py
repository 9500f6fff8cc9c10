"""The published tables (resources/reference/*.csv), read and checked.

A measure table's reference has one row per dataset (key column ``dataset``, an optional
``task`` column) and one column per retriever label; a column table's has one row per
retriever (key column ``backbone``) and one column per (query set, measure) label. Every
other cell must be a number or empty. Rows and columns the study does not use are not
errors: the report lists them as 'not compared'.
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path

ANNOTATION_COLUMNS = {"task", "significant_drop_marked"}  # text columns the paper's tables carry


class ReferenceTableError(ValueError):
    """A published-numbers CSV that cannot be read as a table of numbers."""


@dataclass
class Reference:
    path: str | None
    key: str
    values: dict[str, dict[str, float | None]] = field(default_factory=dict)  # row -> column -> value

    def get(self, row: str, column: str) -> float | None:
        return self.values.get(row, {}).get(column)

    @property
    def columns(self) -> list[str]:
        seen: dict[str, None] = {}
        for row in self.values.values():
            seen.update(dict.fromkeys(row))
        return list(seen)


def read_reference(path: str | Path | None, key: str) -> Reference:
    """The reference CSV at ``path`` keyed by column ``key``; no path: an empty reference."""
    if not path:
        return Reference(None, key)
    path = Path(path)
    if not path.exists():
        raise ReferenceTableError(
            f"{path}: reference table not found; fix tables.<name>.reference in the config "
            "or remove the key to build the table without published numbers"
        )
    with open(path, encoding="utf-8", newline="") as stream:
        rows = list(csv.reader(stream))
    if not rows or not any(cell.strip() for cell in rows[0]):
        raise ReferenceTableError(f"{path}: empty file, expected a header row with a {key!r} column")
    header = [cell.strip() for cell in rows[0]]
    if key not in header:
        raise ReferenceTableError(
            f"{path}, line 1: missing column {key!r} (header: {', '.join(header)}); "
            f"the first column must name the {key} of each row"
        )
    reference = Reference(str(path), key)
    for line, row in enumerate(rows[1:], start=2):
        if not any(cell.strip() for cell in row):
            continue
        if len(row) != len(header):
            raise ReferenceTableError(f"{path}, line {line}: {len(row)} fields, the header has {len(header)}")
        record = dict(zip(header, (cell.strip() for cell in row)))
        values = {}
        for column, cell in record.items():
            if column == key or column in ANNOTATION_COLUMNS:
                continue
            if cell == "":
                values[column] = None
                continue
            try:
                value = float(cell)
            except ValueError:
                value = math.nan
            if not math.isfinite(value):
                raise ReferenceTableError(
                    f"{path}, line {line}, column {column!r}: {cell!r} is not a number; "
                    "published values must be numbers (leave the cell empty if unknown)"
                )
            values[column] = value
        reference.values[record[key]] = values
    return reference
