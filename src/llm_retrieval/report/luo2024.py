"""Luo et al. 2024's published numbers as the report's reference tables (config/luo2024.yaml).

The study printed only its Table 3 and numbers in its prose as text (resources/reference/luo2024_*.csv,
copied verbatim from ../shared/reference/). Its Table 3 gives, for five backbones, nDCG@10 of the
retrievers trained with instructions and, in parentheses, the difference to the same backbone trained
without: so the plain MS MARCO retrievers' scores on those six sets are value - delta. From these:

- ``luo2024_table3_instruction.csv``: Table 3 in the layout of a measure table (a row per dataset,
  a column per retriever label), for tables.instruction;
- ``luo2024_beir_transfer_derived.csv``: value - delta on the five BEIR sets of Table 3 (no Avg row:
  the study's BEIR-13 average is over thirteen), for tables.beir13;
- ``luo2024_indomain_derived.csv``: MS MARCO dev nDCG@10 = value - delta, and the prose's two in-domain
  scores as MRR@10 (the prose says "probably MRR@10", its Figure 1), for tables.indomain.

``python -m llm_retrieval.report.luo2024`` writes the three files; a test checks they equal what this
module derives from the verbatim copies, so the derived files cannot drift from the published ones.
Every other table and figure of the study was printed as an image: "not published in the text".
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from ..atomic import write_text

REFERENCE = Path(__file__).resolve().parents[3] / "resources" / "reference"
TRAINED = "luo2024_table3_instruction_trained.csv"
DELTA = "luo2024_table3_delta_vs_no_instruction.csv"
PROSE = "luo2024_prose.csv"
NOT_PUBLISHED = "not published in the text"
# Table 3's column names -> the collection labels of config/luo2024.yaml.
DATASET_LABELS = {"MSMARCO": "MS MARCO"}
BEIR_SETS = ("HotpotQA", "NQ", "FiQA", "NFCorpus", "SciFact")
# The prose's in-domain scores (section 4.1): claim -> (backbone label, column label).
INDOMAIN_CLAIMS = {
    "indomain Qwen1.5-0.5B MS MARCO dev score": ("Qwen1.5-0.5B", "dev_mrr10"),
    "indomain Qwen1.5-32B MS MARCO dev score": ("Qwen1.5-32B", "dev_mrr10"),
}


def _read(path: Path) -> list[dict[str, str]]:
    with open(path, encoding="utf-8", newline="") as stream:
        return list(csv.DictReader(stream))


def _csv(header: list[str], rows: list[list]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(header)
    writer.writerows([["" if v is None else (f"{v:.3f}" if isinstance(v, float) else v) for v in r] for r in rows])
    return buffer.getvalue()


def plain_scores(root: Path = REFERENCE) -> dict[str, dict[str, float]]:
    """backbone -> Table 3 dataset -> nDCG@10 of the retriever trained without instructions (value - delta)."""
    trained = {r["backbone"]: r for r in _read(root / TRAINED)}
    out = {}
    for delta in _read(root / DELTA):
        row = trained[delta["backbone"]]
        out[delta["backbone"]] = {
            k: round(float(row[k]) - float(v), 3) for k, v in delta.items() if k not in ("backbone", "Avg")
        }
    return out


def instruction_table(root: Path = REFERENCE) -> str:
    trained = _read(root / TRAINED)
    backbones = [r["backbone"] for r in trained]
    datasets = [k for k in trained[0] if k != "backbone"]
    rows = [[DATASET_LABELS.get(d, d), *(float(r[d]) for r in trained)] for d in datasets]
    return _csv(["dataset", *backbones], rows)


def beir_transfer_table(root: Path = REFERENCE) -> str:
    plain = plain_scores(root)
    backbones = list(plain)
    return _csv(["dataset", *backbones], [[d, *(plain[b][d] for b in backbones)] for d in BEIR_SETS])


def indomain_table(root: Path = REFERENCE) -> str:
    plain = plain_scores(root)
    prose = {r["claim"]: float(r["value"]) for r in _read(root / PROSE)}
    rows: dict[str, dict[str, float]] = {b: {"dev_ndcg10": v["MSMARCO"]} for b, v in plain.items()}
    for claim, (backbone, column) in INDOMAIN_CLAIMS.items():
        rows.setdefault(backbone, {})[column] = prose[claim]
    columns = ["dev_ndcg10", "dev_mrr10"]
    return _csv(["backbone", *columns], [[b, *(v.get(c) for c in columns)] for b, v in rows.items()])


DERIVED = {
    "luo2024_table3_instruction.csv": instruction_table,
    "luo2024_beir_transfer_derived.csv": beir_transfer_table,
    "luo2024_indomain_derived.csv": indomain_table,
}


def write_derived(root: Path = REFERENCE, out: Path | None = None) -> list[Path]:
    out = out or root
    written = []
    for name, derive in DERIVED.items():
        write_text(out / name, derive(root))
        written.append(out / name)
    return written


if __name__ == "__main__":
    for path in write_derived():
        print(path)
