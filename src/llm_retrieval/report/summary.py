"""The report's opening paragraph, generated from the numbers, and its provenance page.

The paragraph says, per table, which retriever wins where and by how much, how many cells differ
significantly from Base, and how close the numbers came to the published ones; a study whose
backbones are built random-weight models (the offline demo) carries a caveat saying so.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from ..evaluation_kinds import display_name
from .cost import NOT_MEASURED
from .render import markdown_table
from .tables import DROP_MARK, UP_MARK, Table, to_rst

CAVEAT = (
    "**Demo caveat:** the backbones here are tiny models with random weights, so the dense numbers are "
    "near chance and say nothing about how specialization changes retrieval; the demo exercises the "
    "machinery (tables, tests, figures, cost), the published study answers the question."
)


def _best(values: dict[str, float]) -> tuple[str, float, str | None, float | None]:
    ranked = sorted(values.items(), key=lambda kv: -kv[1])
    first = ranked[0]
    second = ranked[1] if len(ranked) > 1 else (None, None)
    return first[0], first[1], second[0], second[1]


def significance_sentence(table: Table) -> str:
    """Who is significantly above and below the anchor, in how many cells, in plain words:
    "BM25 is significantly above Base in 3 of 6 datasets; BERT significantly below Base in 3"."""
    unit = "dataset" if table.layout == "measure" else "column"
    total = len(table.items)
    counts = {mark: {} for mark in (UP_MARK, DROP_MARK)}
    for cell in table.cells.values():
        if cell.mark in counts:
            counts[cell.mark][cell.retriever] = counts[cell.mark].get(cell.retriever, 0) + 1
    clauses = [
        (retriever, direction, n)
        for mark, direction in ((UP_MARK, "above"), (DROP_MARK, "below"))
        for retriever, n in sorted(counts[mark].items(), key=lambda kv: (-kv[1], kv[0]))
    ]
    if not clauses:
        return f"no retriever is significantly above or below {table.anchor} in any {unit}"
    first, *rest = clauses
    retriever, direction, n = first
    parts = [f"{retriever} is significantly {direction} {table.anchor} in {n} of {total} {unit}{'s' * (total != 1)}"]
    parts += [f"{retriever} significantly {direction} {table.anchor} in {n}" for retriever, direction, n in rest]
    return "; ".join(parts)


def table_sentence(table: Table) -> str:
    if table.layout == "measure":
        averages = {r: c.ours for r, c in table.averages.items()}
        best, value, second, value2 = _best(averages)
        leads = sum(max(table.retrievers, key=lambda r: table.cells[(r, item)].ours) == best for item in table.items)
        text = (
            f"On *{table.title}*, {best} has the highest average {display_name(table.measure)} ({value:.3f}"
            + (f", {value - value2:+.3f} over {second}" if second else "")
            + ")"
            + f" and leads on {leads} of {len(table.items)} dataset{'s' * (len(table.items) != 1)}"
        )
    else:
        column = table.items[0]
        best, value, second, value2 = _best({r: table.cells[(r, column)].ours for r in table.retrievers})
        text = (
            f"In *{table.title}*, {best} leads on {table.item_name(column)} ({value:.3f}"
            + (f", {value - value2:+.3f} over {second}" if second else "")
            + ")"
        )
        if table.anchor and table.anchor not in (best, second):
            text += f", {value - table.cells[(table.anchor, column)].ours:+.3f} over {table.anchor}"
    if table.anchor:
        text += f". {_capital(significance_sentence(table))} (paired tests, Holm-corrected)"
    return text + "."


def _capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def fidelity_sentence(results: list[dict]) -> str:
    compared = [r for r in results if r["compared_cells"]]
    if not compared:
        return (
            "No dataset or column of this study is in the published tables, so no cell is compared with the "
            "paper (the paper's names are listed as 'not compared')."
        )
    parts = []
    for r in compared:
        tau = r["kendall_tau_overall"]
        parts.append(
            f"*{r['title']}*: mean absolute difference {r['mean_abs_diff']:.3f}, max {r['max_abs_diff']:.3f}, "
            f"{len(r['cells_over_threshold'])} of {r['compared_cells']} cells off by more than "
            f"{r['threshold']}" + (f", Kendall τ {tau:.2f}" if tau is not None else "")
        )
    return "Against the published numbers: " + "; ".join(parts) + "."


def cost_sentence(costs: dict) -> str:
    """This run's jobs and hours (cost.json), saying which steps are not counted, and the projection."""
    measured = costs["measured"]
    projected = sum(r["gpu_h"] for r in costs["projected"])
    used = sum(j["gpu_h_used"] for j in measured)
    gpu = f"{used:.3f} GPU-h on the GPUs the jobs saw" if used else "no GPU used"
    return (
        f"This run: {len(measured)} jobs (every step but {', '.join(NOT_MEASURED)} and the target rule all), "
        f"{sum(j['wall_s'] for j in measured) / 60:.1f} min of job time, {sum(j['cpu_h'] for j in measured):.3f} "
        f"CPU-h, {gpu}; the paper study would take about {projected:,.0f} GPU-h (estimate, no GPU measurement)."
    )


def opening(tables: list[Table], fidelities: list[dict], cost_line: str | None = None) -> str:
    sentences = [table_sentence(t) for t in tables] + [fidelity_sentence(fidelities)]
    if cost_line:
        sentences.append(cost_line)
    text = " ".join(sentences)
    if any(t.random_weights for t in tables):
        text += "\n\n" + CAVEAT
    return text


FRONT_PAGE_MARKER = ".. summary goes here"  # where the generated text goes in workflow/report/workflow.rst


def main_tables(config: dict) -> list[str]:
    """The tables the report's first page shows inline: report.main_tables, else the first table."""
    return config["report"].get("main_tables") or list(config["tables"])[:1]


def front_page(template: str, text: str, tables: list[Table], main: list[str]) -> str:
    """The report's first page (RST): the summary, then the main tables inline; the rest stay in the menu."""
    shown = [t for name in main for t in tables if t.name == name]
    text = text.replace("@", "\\@")  # RST would make nDCG@10 a mailto: link
    if shown:
        names = ", ".join(f"*{t.title}*" for t in shown)
        text += (
            f"\n\nThe main result{'s' * (len(shown) != 1)} ({names}); every table, figure and page is in "
            "the menu.\n\n" + "\n".join(to_rst(t) for t in shown)
        )
    return template.replace(FRONT_PAGE_MARKER, text)


def provenance(config: dict, pin_files: list[str | Path], backbone_records: list[str | Path] = ()) -> str:
    """Markdown: the config used (defaults filled), the backbones' pinned revisions, the pinned packages."""
    lines = ["# Provenance", "", "## Backbones and their revisions", ""]
    rows = []
    resolved = {}
    for record in backbone_records:
        path = Path(record)
        if path.exists():
            resolved[path.parent.name] = yaml.safe_load(path.read_text()) or {}
    for name, spec in config["backbones"].items():
        model = spec.get("hub_id") or f"built (random weights, seed {spec.get('build', {}).get('seed')})"
        rec = resolved.get(name, {})
        snapshot = Path(rec.get("path", "")).name if "/snapshots/" in rec.get("path", "") else ""
        commit = rec.get("commit") or snapshot or rec.get("revision") or ""
        rows.append([name, spec["label"], model, spec["revision"] if spec.get("hub_id") else "–", commit])
    lines.append(markdown_table(["backbone", "label", "model", "revision", "resolved"], rows))
    for path in pin_files:
        path = Path(path)
        if path.exists():
            lines += ["", f"## {path.name}", "", "```", path.read_text().rstrip(), "```"]
    lines += [
        "",
        "## Config used (defaults filled in)",
        "",
        "```",
        yaml.safe_dump(config, sort_keys=False, allow_unicode=True).rstrip(),
        "```",
        "",
    ]
    return "\n".join(lines)
