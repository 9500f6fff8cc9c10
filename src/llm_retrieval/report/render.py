"""The one Markdown table writer every report page uses."""

from __future__ import annotations


def markdown_table(header: list[str], rows: list[list]) -> str:
    """A pipe table: the header, its rule, one line per row (each cell as ``str()`` gives it)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
