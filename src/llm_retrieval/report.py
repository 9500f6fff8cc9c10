"""The paper's comparison tables from the metrics JSON files, published numbers beside ours.

Two layouts, as in the paper:
- *measure* tables (BEIR, CoIR): rows are collections, columns BM25 and the backbones,
  one measure, an Avg row; CoIR rows grouped by task;
- *column* tables (supervised MS MARCO): rows are BM25 and the backbones, columns are
  (query set, measure) pairs; a backbone significantly below the first backbone (Base)
  is marked (paired two-sided t-test on per-query values, p < 0.05).
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from scipy import stats

from .atomic import write_text
from .data.canonical import CorruptOutputError
from .pins import hub_refs
from .study import BM25, LEXICAL, EvalUnit, Study

SIGNIFICANCE_P = 0.05
DROP_MARK = "▼"


def table_collections(study: Study, name: str) -> list[str]:
    """The table's own list if it has one, else its setting's collections that name this table."""
    spec = study.config["tables"][name]
    if "collections" in spec:
        return list(spec["collections"])
    return [c for c in study.collections_of(spec["setting"]) if study.collection(c)["table"] == name]


def table_units(study: Study, name: str) -> list[EvalUnit]:
    """The runs a table reads, BM25 included."""
    setting = study.config["tables"][name]["setting"]
    units = []
    for collection in table_collections(study, name):
        for query_set in study.eval_query_sets(collection):
            units.append(EvalUnit(LEXICAL, BM25, collection, query_set))
            units.extend(EvalUnit(setting, b, collection, query_set) for b in study.backbones_of(setting))
    return units


def load_metrics(path: str | Path) -> dict:
    try:
        with open(path, encoding="utf-8") as stream:
            return json.load(stream)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CorruptOutputError(path, err, "metrics JSON") from err


def read_reference(path: str | Path | None) -> list[dict]:
    if not path or not Path(path).exists():
        return []
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.4f}"


def _paper(value) -> float | None:
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def build_table(study: Study, name: str, metrics_path) -> tuple[str, list[list[str]]]:
    """Markdown text and CSV rows of table ``name``; ``metrics_path(unit)`` locates each metrics file."""
    spec = study.config["tables"][name]
    if "columns" in spec:
        return _column_table(study, name, spec, metrics_path)
    return _measure_table(study, name, spec, metrics_path)


def _retrievers(study: Study, setting: str) -> list[tuple[str, str, str]]:
    """(retriever, setting it is filed under, column label), BM25 first."""
    return [(BM25, LEXICAL, study.config["bm25"].get("label", "BM25"))] + [
        (b, setting, study.backbone(b)["label"]) for b in study.backbones_of(setting)]


def _measure_table(study, name, spec, metrics_path):
    retrievers = _retrievers(study, spec["setting"])
    reference = {row.get("dataset"): row for row in read_reference(spec.get("reference"))}
    grouped = spec.get("grouped", False)
    labels = [label for _, _, label in retrievers]
    header = (["task"] if grouped else []) + ["dataset"] + labels
    csv_header = header + [f"{label} (paper)" for label in labels]
    csv_rows, md_rows, ours_by_column = [csv_header], [], {label: [] for label in labels}
    rows: dict[str, list[str]] = {}  # one row per label: per-language collections are averaged
    for collection in table_collections(study, name):
        rows.setdefault(study.collection(collection)["label"], []).append(collection)
    for row_label, collections in rows.items():
        meta = study.collection(collections[0])

        def mean_of(retriever: str, setting: str) -> float:
            values = [load_metrics(metrics_path(EvalUnit(setting, retriever, c, study.eval_query_sets(c)[0])))
                      ["aggregate"][spec["measure"]] for c in collections]
            return sum(values) / len(values)

        ours = {label: mean_of(r, s) for r, s, label in retrievers}
        paper = {label: _paper(reference.get(row_label, {}).get(label)) for label in labels}
        for label in labels:
            ours_by_column[label].append(ours[label])
        lead = ([meta.get("group", "")] if grouped else []) + [meta["label"]]
        csv_rows.append(lead + [_fmt(ours[l]) for l in labels] + [_fmt(paper[l]) for l in labels])
        md_rows.append(lead + [_cell(ours[l], paper[l]) for l in labels])
    averages = {l: sum(v) / len(v) for l, v in ours_by_column.items() if v}
    # The published Avg is comparable only when the table holds exactly the published datasets.
    same_rows = set(rows) == set(reference) - {"Avg"}
    paper_avg = {l: _paper(reference.get("Avg", {}).get(l)) if same_rows else None for l in labels}
    lead = (["Avg"] if grouped else []) + ["Avg"]
    csv_rows.append(lead + [_fmt(averages.get(l)) for l in labels] + [_fmt(paper_avg[l]) for l in labels])
    md_rows.append(lead + [_cell(averages.get(l), paper_avg[l]) for l in labels])
    note = f"{spec['measure']}; cells are ours, with the published value after the slash where the paper has one."
    return _markdown(spec["title"], header, md_rows, note), csv_rows


def _column_table(study, name, spec, metrics_path):
    collections = table_collections(study, name)
    if len(collections) != 1:
        raise ValueError(f"tables.{name}: a column table needs exactly one collection in its setting, got {collections}")
    collection = collections[0]
    retrievers = _retrievers(study, spec["setting"])
    reference = {row.get("backbone"): row for row in read_reference(spec.get("reference"))}
    columns = spec["columns"]
    loaded = {(r, c["query_set"]): load_metrics(metrics_path(EvalUnit(s, r, collection, c["query_set"])))
              for r, s, _ in retrievers for c in columns}
    anchor = retrievers[1][0] if len(retrievers) > 1 else None  # the first backbone (Base)
    header = ["backbone"] + [c["label"] for c in columns]
    csv_rows = [header + [f"{c['label']} (paper)" for c in columns] + ["significant_drop"]]
    md_rows = []
    for retriever, _, label in retrievers:
        ref = reference.get(label, {})
        ours = [loaded[(retriever, c["query_set"])]["aggregate"][c["measure"]] for c in columns]
        paper = [_paper(ref.get(c["label"])) for c in columns]
        drops = [c["label"] for c in columns if retriever not in (BM25, anchor) and anchor
                 and significant_drop(loaded[(retriever, c["query_set"])], loaded[(anchor, c["query_set"])], c["measure"])]
        csv_rows.append([label] + [_fmt(v) for v in ours] + [_fmt(v) for v in paper] + [";".join(drops)])
        md_rows.append([label] + [_cell(v, p) + (DROP_MARK if c["label"] in drops else "")
                                  for v, p, c in zip(ours, paper, columns)])
    note = (f"{DROP_MARK}: significantly below {study.backbone(anchor)['label'] if anchor else '-'} "
            f"(paired t-test on per-query values, p < {SIGNIFICANCE_P}); ours / published.")
    return _markdown(spec["title"], header, md_rows, note), csv_rows


def significant_drop(candidate: dict, anchor: dict, measure: str) -> bool:
    queries = sorted(set(candidate["per_query"]) & set(anchor["per_query"]))
    a = [candidate["per_query"][q][measure] for q in queries]
    b = [anchor["per_query"][q][measure] for q in queries]
    if len(queries) < 2 or a == b or sum(a) >= sum(b):
        return False
    return bool(stats.ttest_rel(a, b).pvalue < SIGNIFICANCE_P)


def _cell(ours: float | None, paper: float | None) -> str:
    return _fmt(ours) + (f" / {paper:.4f}" if paper is not None else "")


def _markdown(title: str, header: list[str], rows: list[list[str]], note: str) -> str:
    lines = [f"## {title}", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines + ["", note, ""])


def pins_note(study: Study, name: str) -> str:
    """The hub revisions (commit hashes once pinned) behind a table's models and data, for its footer."""
    setting = study.config["tables"][name]["setting"]
    backbones, collections = set(study.backbones_of(setting)), set(table_collections(study, name))
    refs = [ref for ref in hub_refs(study.config)
            if (ref.target[0] == "backbones" and ref.target[1] in backbones)
            or (ref.target[0] == "collections" and ref.target[1] in collections)
            or (ref.target[0] == "training" and setting == "supervised")]
    if not refs:
        return ""
    shown = ", ".join(f"{ref.repo}@{ref.revision}" + ("" if ref.pinned else " (UNPINNED)") for ref in refs)
    return f"Hub revisions used: {shown}.\n"


def write_table(study: Study, name: str, metrics_path, md_path: str | Path, csv_path: str | Path) -> None:
    markdown, rows = build_table(study, name, metrics_path)
    markdown += pins_note(study, name)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(rows)
    write_text(csv_path, buffer.getvalue())
    write_text(md_path, markdown)
