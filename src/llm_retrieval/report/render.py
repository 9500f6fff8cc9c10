"""The one Markdown table writer every report page uses."""

from __future__ import annotations


def markdown_table(header: list[str], rows: list[list], right_aligned: frozenset[int] = frozenset()) -> str:
    """A pipe table: the header, its rule, one line per row (each cell as ``str()`` gives it);
    the columns whose indices are in ``right_aligned`` are right-aligned (``---:``)."""
    rule = "".join("---:|" if i in right_aligned else "---|" for i in range(len(header)))
    lines = ["| " + " | ".join(header) + " |", "|" + rule]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
