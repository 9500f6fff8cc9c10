"""The paper's comparison tables from the metrics JSON files, published numbers beside ours.

Two layouts, as in the paper:
- *measure* tables (BEIR, CoIR): rows are collections, columns BM25 and the backbones,
  one measure, an Avg row with a bootstrap 95% CI (queries resampled within each dataset);
  CoIR rows grouped by task;
- *column* tables (supervised MS MARCO): rows are BM25 and the backbones, columns are
  (query set, measure) pairs, each cell with a bootstrap 95% CI over its queries.

Every cell other than the anchor's (the first backbone, Base) is tested against the anchor on
per-query values (paired t-test, or a paired randomisation test with ``report.significance_test``),
the p-values of a table are Holm-corrected together, and a cell significantly above the anchor
is marked ▲, below ▼ (adjusted p < ``report.alpha``).
"""

from __future__ import annotations

import csv
import html
import io
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .. import axes, sts
from ..atomic import write_text
from ..data.canonical import CorruptOutputError
from ..evaluation_kinds import STS, display_name
from ..pins import hub_refs
from ..study import BM25, LEXICAL, EvalUnit, Study
from . import significance as sig
from .reference import Reference, read_reference
from .render import markdown_table

UP_MARK, DROP_MARK = "▲", "▼"
AVG = "Avg"


@dataclass
class Cell:
    retriever: str  # column label of the retriever (BM25, Base, ...)
    item: str  # the dataset (measure tables) or the column label (column tables)
    ours: float
    paper: float | None = None
    p: float | None = None  # raw p-value against the anchor
    p_holm: float | None = None
    mark: str = ""
    ci: tuple[float, float] | None = None
    win_tie_loss: tuple[int, int, int] | None = None  # per query, against the anchor
    queries: int = 0


@dataclass
class Table:
    name: str
    title: str
    layout: str  # "measure" | "column"
    measure: str | None
    retrievers: list[str]  # labels, BM25 first
    items: list[str]  # datasets or column labels, in table order
    anchor: str | None
    test: str
    alpha: float
    groups: dict[str, str] = field(default_factory=dict)  # dataset -> task (grouped tables)
    cells: dict[tuple[str, str], Cell] = field(default_factory=dict)
    averages: dict[str, Cell] = field(default_factory=dict)  # measure tables: the Avg row
    reference: str | None = None
    not_compared: list[str] = field(default_factory=list)
    random_weights: bool = False
    columns: dict[str, list[str]] = field(default_factory=dict)  # column tables: label -> [query set, measure]
    published: str | None = None  # tables.<name>.published: what the study printed for this table

    def item_name(self, item: str) -> str:
        """A column's name in the field's words (MRR@10 (dev) for dev_mrr10); a dataset's is its own."""
        if item not in self.columns:
            return item
        query_set, measure = self.columns[item]
        return f"{display_name(measure)} ({query_set})"

    def cell(self, retriever: str, item: str) -> Cell:
        return self.cells[(retriever, item)]

    def to_json(self) -> dict:
        out = asdict(self)
        out["cells"] = [asdict(c) for c in self.cells.values()]
        out["averages"] = [asdict(c) for c in self.averages.values()]
        return out

    @classmethod
    def from_json(cls, data: dict) -> Table:
        data = dict(data)
        cells = [
            Cell(
                **{
                    **c,
                    "ci": tuple(c["ci"]) if c["ci"] else None,
                    "win_tie_loss": tuple(c["win_tie_loss"]) if c["win_tie_loss"] else None,
                }
            )
            for c in data.pop("cells")
        ]
        averages = [Cell(**{**c, "ci": tuple(c["ci"]) if c["ci"] else None}) for c in data.pop("averages")]
        table = cls(**data)
        table.cells = {(c.retriever, c.item): c for c in cells}
        table.averages = {c.retriever: c for c in averages}
        return table


def load_metrics(path: str | Path) -> dict:
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptOutputError(path, err, "metrics JSON") from err


def _retrievers(study: Study, setting: str) -> list[tuple[str, str, str]]:
    """(retriever, setting it is filed under, column label), BM25 first."""
    return [(BM25, LEXICAL, study.config["bm25"]["label"])] + [
        (b, setting, study.backbone(b)["label"]) for b in study.backbones_of(setting)
    ]


def random_weights(study: Study, setting: str) -> bool:
    """True when a backbone of the setting is a built random-weight model (the demo)."""
    return any("build" in study.backbone(b) for b in study.backbones_of(setting))


def build(study: Study, name: str, metrics_path) -> Table:
    """Table ``name`` with significance, CIs and published values; ``metrics_path(unit)`` locates metrics."""
    spec = study.config["tables"][name]
    if not study.table_collections(name):
        raise ValueError(
            f"tables.{name}: no collection of this study feeds it (setting {spec['setting']!r}); "
            "the workflow plans only tables with a dataset — add one to the setting or drop the table"
        )
    options = study.config["report"]
    retrievers = _retrievers(study, spec["setting"])
    sts_table = all(study.collection_kind(c) == STS for c in study.table_collections(name))
    if sts_table:  # sentence pairs: no BM25 run (sts.py)
        retrievers = [r for r in retrievers if r[0] != BM25]
    labels = [label for _, _, label in retrievers]
    anchor = labels[0 if sts_table else 1] if len(labels) > (0 if sts_table else 1) else None
    layout = "column" if "columns" in spec else "measure"
    table = Table(
        name=name,
        title=spec["title"],
        layout=layout,
        measure=spec.get("measure"),
        retrievers=labels,
        items=[],
        anchor=anchor,
        test=options["significance_test"],
        alpha=options["alpha"],
        reference=spec.get("reference"),
        random_weights=random_weights(study, spec["setting"]),
        published=spec.get("published"),
    )
    if sts_table:
        return _build_sts(study, name, table, retrievers, metrics_path)
    fill = _fill_column_table if layout == "column" else _fill_measure_table
    per_query = fill(study, spec, table, retrievers, metrics_path)
    _test_against_anchor(table, per_query, options)
    return table


# per_query[(label, item)] = one {query: value} per collection of the row
PerQuery = dict[tuple[str, str], list[dict[str, float]]]


def _fill_column_table(study: Study, spec: dict, table: Table, retrievers, metrics_path) -> PerQuery:
    """Rows are the retrievers, columns (query set, measure) pairs of the table's one collection."""
    reference = read_reference(spec.get("reference"), "backbone")
    collections = study.table_collections(table.name)
    if len(collections) != 1:
        raise ValueError(f"tables.{table.name}: a column table needs exactly one collection, got {collections}")
    per_query: PerQuery = {}
    for column in spec["columns"]:
        table.items.append(column["label"])
        table.columns[column["label"]] = [column["query_set"], column["measure"]]
        for retriever, setting, label in retrievers:
            metrics = load_metrics(metrics_path(EvalUnit(setting, retriever, collections[0], column["query_set"])))
            per_query[(label, column["label"])] = [{q: v[column["measure"]] for q, v in metrics["per_query"].items()}]
            table.cells[(label, column["label"])] = Cell(
                label,
                column["label"],
                metrics["aggregate"][column["measure"]],
                reference.get(label, column["label"]),
                queries=len(metrics["per_query"]),
            )
    table.not_compared = _not_compared(reference, set(table.retrievers), set(table.items))
    return per_query


def _fill_measure_table(study: Study, spec: dict, table: Table, retrievers, metrics_path) -> PerQuery:
    """Rows are the datasets (per-language collections averaged into one row), columns the retrievers;
    an Avg row with its bootstrap CI."""
    options = study.config["report"]
    reference = read_reference(spec.get("reference"), "dataset")
    rows: dict[str, list[str]] = {}  # one row per label: per-language collections are averaged
    for collection in study.table_collections(table.name):
        rows.setdefault(study.collection(collection)["label"], []).append(collection)
    per_query: PerQuery = {}
    for row_label, collections in rows.items():
        table.items.append(row_label)
        if spec.get("grouped"):
            table.groups[row_label] = study.collection(collections[0]).get("group", "")
        for retriever, setting, label in retrievers:
            loaded = [
                load_metrics(metrics_path(EvalUnit(setting, retriever, c, study.eval_query_sets(c)[0])))
                for c in collections
            ]
            per_query[(label, row_label)] = [{q: v[spec["measure"]] for q, v in m["per_query"].items()} for m in loaded]
            ours = sum(m["aggregate"][spec["measure"]] for m in loaded) / len(loaded)
            table.cells[(label, row_label)] = Cell(
                label,
                row_label,
                ours,
                reference.get(row_label, label),
                queries=sum(len(m["per_query"]) for m in loaded),
            )
    # The published Avg is comparable only when the table holds exactly the published datasets.
    same_rows = set(rows) == set(reference.values) - {AVG}
    for i, label in enumerate(table.retrievers):
        groups = [[list(d.values()) for d in per_query[(label, item)]] for item in table.items]
        table.averages[label] = Cell(
            label,
            AVG,
            sum(table.cells[(label, item)].ours for item in table.items) / len(table.items),
            reference.get(AVG, label) if same_rows else None,
            ci=sig.bootstrap_mean_ci(groups, options["bootstrap"], options["seed"] + i),
        )
    table.not_compared = _not_compared(reference, set(table.items) | {AVG}, set(table.retrievers))
    return per_query


def _build_sts(study: Study, name: str, table: Table, retrievers, metrics_path) -> Table:
    """An STS table: rows are STS sets, cells their correlation (sts.py); CIs and the tests against the
    anchor by bootstrap over pairs (a correlation is not a mean of per-pair values)."""
    spec, options = study.config["tables"][name], study.config["report"]
    if table.layout == "column":
        raise ValueError(f"tables.{name}: an STS table has one row per STS set: give it a `measure`, not `columns`")
    statistic = sts.STATISTICS[spec["measure"]]
    reference = read_reference(spec.get("reference"), "dataset")
    rows: dict[str, list[str]] = {}
    for collection in study.table_collections(name):
        rows.setdefault(study.collection(collection)["label"], []).append(collection)
    pairs: dict[tuple[str, str], list] = {}  # (label, row) -> [(gold, cosine)] per collection of the row
    for n, (row_label, collections) in enumerate(rows.items()):
        table.items.append(row_label)
        for retriever, setting, label in retrievers:
            loaded = [
                load_metrics(metrics_path(EvalUnit(setting, retriever, c, study.eval_query_sets(c)[0])))
                for c in collections
            ]
            pairs[(label, row_label)] = [sts.per_pair_arrays(m)[1:] for m in loaded]
            table.cells[(label, row_label)] = Cell(
                label,
                row_label,
                sum(m["aggregate"][spec["measure"]] for m in loaded) / len(loaded),
                reference.get(row_label, label),
                queries=sum(m["num_pairs"] for m in loaded),
                ci=sts.bootstrap_ci(
                    pairs[(label, row_label)], options["bootstrap"], options["seed"] + n, statistic=statistic
                ),
            )
    same_rows = set(rows) == set(reference.values) - {AVG}
    for i, label in enumerate(table.retrievers):
        every = [s for item in table.items for s in pairs[(label, item)]]
        table.averages[label] = Cell(
            label,
            AVG,
            sum(table.cells[(label, r)].ours for r in table.items) / len(rows),
            reference.get(AVG, label) if same_rows else None,
            ci=sts.bootstrap_ci(every, options["bootstrap"], options["seed"] + i, statistic=statistic),
        )
    table.not_compared = _not_compared(reference, set(table.items) | {AVG}, set(table.retrievers))
    tested = []
    for n, ((label, item), cell) in enumerate(table.cells.items()):
        if table.anchor is not None and label != table.anchor:
            cell.p = sts.paired_bootstrap_pvalue(
                pairs[(label, item)], pairs[(table.anchor, item)], options["bootstrap"], options["seed"] + n, statistic
            )
            tested.append(cell)
    _holm_marks(table, tested)
    return table


def _not_compared(reference: Reference, rows: set[str], columns: set[str]) -> list[str]:
    if reference.path is None:
        return []
    return [f"{reference.key} {r}" for r in reference.values if r not in rows] + [
        f"column {c}" for c in reference.columns if c not in columns
    ]


def _flat(values: list[dict[str, float]]) -> dict[str, float]:
    """One {query: value} per collection of a row as one dict (keys ``<i>/<query>`` when several)."""
    if len(values) == 1:
        return values[0]
    return {f"{i}/{q}": v for i, d in enumerate(values) for q, v in d.items()}


def _test_against_anchor(table: Table, per_query, options: dict) -> None:
    tested = []
    for n, ((label, item), cell) in enumerate(table.cells.items()):
        if table.layout == "column":  # CI over the cell's own queries
            cell.ci = sig.bootstrap_mean_ci(
                [[list(per_query[(label, item)][0].values())]], options["bootstrap"], options["seed"] + n
            )
        if table.anchor is None or label == table.anchor:
            continue
        what = f"table {table.name}, {item}: {label} vs {table.anchor}"
        a, b = sig.paired_values(_flat(per_query[(label, item)]), _flat(per_query[(table.anchor, item)]), what)
        cell.p = sig.paired_pvalue(a, b, table.test, options["permutations"], options["seed"] + n)
        cell.win_tie_loss = sig.win_tie_loss(a, b)
        cell.queries = len(a)
        tested.append(cell)
    _holm_marks(table, tested)


def _holm_marks(table: Table, tested: list[Cell]) -> None:
    """Holm-adjusted p-values of the cells tested against the anchor, and their marks."""
    for cell, adjusted in zip(tested, sig.holm([c.p for c in tested])):
        cell.p_holm = adjusted
        if adjusted < table.alpha:
            anchor = table.cell(table.anchor, cell.item).ours
            cell.mark = UP_MARK if cell.ours > anchor else DROP_MARK if cell.ours < anchor else ""


# --- rendering ------------------------------------------------------------------------


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _ci(ci) -> str:
    return "" if not ci else f"[{ci[0]:.4f}, {ci[1]:.4f}]"


def _text(cell: Cell, with_ci: bool = False) -> str:
    text = _fmt(cell.ours) + cell.mark
    if with_ci and cell.ci:
        text += " " + _ci(cell.ci)
    return text + (f" / {cell.paper:.4f}" if cell.paper is not None else "")


def _grid(table: Table) -> tuple[list[str], list[list[Cell | str]]]:
    """Header and rows of the printed table: lead text columns, then cells."""
    if table.layout == "column":
        header = ["backbone"] + table.items
        return header, [[r] + [table.cell(r, i) for i in table.items] for r in table.retrievers]
    grouped = bool(table.groups)
    header = (["task"] if grouped else []) + ["dataset"] + table.retrievers
    rows = [
        ([table.groups[i]] if grouped else []) + [i] + [table.cell(r, i) for r in table.retrievers] for i in table.items
    ]
    rows.append(([AVG] if grouped else []) + [AVG] + [table.averages[r] for r in table.retrievers])
    return header, rows


def note(table: Table) -> str:
    test = "paired t-test" if table.test == "ttest" else "paired randomisation test"
    parts = [
        f"{display_name(table.measure)}; " if table.measure else "",
        "cells are ours, with the published value after the slash where the paper has one. ",
    ]
    if table.anchor:
        parts.append(
            f"{UP_MARK} / {DROP_MARK}: significantly above / below {table.anchor} "
            f"({test} on per-query values, Holm-corrected across the table, p < {table.alpha}). "
        )
    parts.append("Brackets: bootstrap 95% CI (queries resampled within each dataset).")
    if table.published:
        parts.append(f"\n\nPublished numbers: {table.published}.")
    if table.not_compared:
        parts.append(f"\n\nNot compared (in the published table, not in this study): {', '.join(table.not_compared)}.")
    return "".join(parts)


def to_markdown(table: Table) -> str:
    header, rows = _grid(table)
    printed = [
        [c if isinstance(c, str) else _text(c, with_ci=table.layout == "column" or c.item == AVG) for c in row]
        for row in rows
    ]
    return "\n".join([f"## {table.title}", "", markdown_table(header, printed), "", note(table), ""])


def _rst(text: str) -> str:
    """Text that RST prints as it is (markup characters escaped)."""
    return "".join("\\" + c if c in "\\*`|_[]@" else c for c in text)  # @: else nDCG@10 reads as an e-mail


def to_rst(table: Table) -> str:
    """The table as an RST list-table, for the report's first page (RST rendered by Snakemake)."""
    header, rows = _grid(table)
    lines = [f".. list-table:: {_rst(table.title)}", "   :header-rows: 1", ""]
    for row in [[table.item_name(h) for h in header], *rows]:
        texts = [c if isinstance(c, str) else _text(c, with_ci=table.layout == "column" or c.item == AVG) for c in row]
        lines.append(f"   * - {_rst(texts[0])}")
        lines += [f"     - {_rst(text)}" for text in texts[1:]]
    paragraphs = [_rst(p) for p in note(table).split("\n\n")]
    return "\n".join(lines) + "\n\n" + "\n\n".join(paragraphs) + "\n"


def to_html(table: Table) -> str:
    header, rows = _grid(table)
    out = [
        f"<h2>{html.escape(table.title)}</h2>",
        '<table class="comparison">',
        "<thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>",
    ]
    for row in rows:
        tds = []
        for c in row:
            if isinstance(c, str):
                tds.append(f"<th>{html.escape(c)}</th>")
                continue
            title = f"p={c.p:.3g}, Holm p={c.p_holm:.3g}" if c.p is not None else ""
            cls = {UP_MARK: "up", DROP_MARK: "down"}.get(c.mark, "")
            ci = f"<br><small>{_ci(c.ci)}</small>" if c.ci else ""
            paper = f' <span class="paper">/ {c.paper:.4f}</span>' if c.paper is not None else ""
            tds.append(f'<td class="{cls}" title="{title}">{_fmt(c.ours)}{html.escape(c.mark)}{paper}{ci}</td>')
        out.append("<tr>" + "".join(tds) + "</tr>")
    out += ["</tbody></table>", f"<p>{html.escape(note(table))}</p>"]
    style = (
        "<style>table.comparison{border-collapse:collapse;font-family:sans-serif;font-size:13px}"
        "table.comparison td,table.comparison th{border:1px solid #ccc;padding:3px 6px;text-align:right}"
        "td.up{background:#e3f4e3}td.down{background:#f8e1e1}.paper{color:#777}</style>"
    )
    return (
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{html.escape(table.title)}</title>{style}'
        f"</head><body>{''.join(out)}</body></html>\n"
    )


def to_csv_rows(table: Table) -> list[list[str]]:
    header, rows = _grid(table)
    lead = [h for h in header if h not in (table.retrievers if table.layout == "measure" else table.items)]
    values = header[len(lead) :]
    out = [
        lead
        + values
        + [f"{v} (paper)" for v in values]
        + [f"{v} (p_holm)" for v in values]
        + [f"{v} (mark)" for v in values]
        + [f"{v} (ci95)" for v in values]
    ]
    if table.layout == "column":
        out[0].append("significant_drop")
    for row in rows:
        cells = row[len(lead) :]
        line = [str(c) for c in row[: len(lead)]] + [_fmt(c.ours) for c in cells] + [_fmt(c.paper) for c in cells]
        line += ["" if c.p_holm is None else f"{c.p_holm:.4g}" for c in cells] + [c.mark for c in cells]
        line += [_ci(c.ci) for c in cells]
        if table.layout == "column":
            line.append(";".join(c.item for c in cells if c.mark == DROP_MARK))
        out.append(line)
    return out


def pins_note(study: Study, name: str) -> str:
    """The hub revisions (commit hashes once pinned) behind a table's models and data, for its footer."""
    setting = study.config["tables"][name]["setting"]
    backbones, collections = set(study.backbones_of(setting)), set(study.table_collections(name))
    refs = [
        ref
        for ref in hub_refs(study.config)
        if (ref.target[0] == "backbones" and ref.target[1] in backbones)
        or (ref.target[0] == "collections" and ref.target[1] in collections)
        or (ref.target[0] == "training" and axes.base_of(setting) == "supervised")
    ]
    if not refs:
        return ""
    shown = ", ".join(f"{ref.repo}@{ref.revision}" + ("" if ref.pinned else " (UNPINNED)") for ref in refs)
    return f"Hub revisions used: {shown}.\n"


def write_table(study: Study, name: str, metrics_path, md_path, csv_path, html_path=None, json_path=None) -> Table:
    table = build(study, name, metrics_path)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(to_csv_rows(table))
    write_text(csv_path, buffer.getvalue())
    write_text(md_path, to_markdown(table) + pins_note(study, name))
    if html_path:
        write_text(html_path, to_html(table))
    if json_path:
        write_text(json_path, json.dumps(table.to_json(), indent=1))
    return table


def read_table(path: str | Path) -> Table:
    try:
        with open(path, encoding="utf-8") as stream:
            return Table.from_json(json.load(stream))
    except (json.JSONDecodeError, UnicodeDecodeError, TypeError, KeyError) as err:
        raise CorruptOutputError(path, err, "table JSON") from err
