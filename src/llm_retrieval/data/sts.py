"""Sentence-similarity (STS) collections: sentence pairs with a gold similarity score.

Layout of an STS collection folder (the retrieval layout is canonical.py's):

- ``pairs.parquet``: ``query_set, id, sentence1, sentence2, score`` (one row per pair; a query set
  is a split, as for retrieval collections);
- ``manifest.json``: provenance, counts, counted warnings (as staging.finish_collection writes).

Two sources:

- ``mteb_sts``: MTEB's English STS datasets on the Hugging Face hub (``mteb/<name>``: sts12-sts,
  sts13-sts, sts14-sts, sts15-sts, sts16-sts, stsbenchmark-sts, sickr-sts, biosses-sts), columns
  ``sentence1, sentence2, score``, read with ``datasets.load_dataset``. Without a ``revision`` the
  commit MTEB itself pins for the task is used (``resources/checksums/mteb_sts.tsv``, copied from
  mteb 2.26.24's task metadata); the pins lock applies as to any hub dataset. ``local_root`` reads
  ``<local_root>/<name>/`` through the same ``datasets`` path (offline tests, mirrors).
- ``sts_local``: a folder of ``<split>.jsonl`` (or ``.jsonl.gz``) records with the same fields
  (how the hub repos store them), read line by line: the offline demo's built set.

Checks: a pair without sentence1/sentence2/score, or a score that is not a number, is an error
naming the file and row; a duplicate pair id in a split is an error; an empty sentence is a counted
warning; a split with fewer than two pairs, or whose gold scores are all equal, is an error
(Spearman's correlation is undefined there).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_json, write_parquet
from .canonical import MANIFEST_FILE, DataError, first_few
from .download import pinned_checksum
from .textfiles import iter_json_records, require_id

PAIRS_FILE = "pairs.parquet"
PAIRS_SCHEMA = pa.schema(
    [
        ("query_set", pa.string()),
        ("id", pa.string()),
        ("sentence1", pa.string()),
        ("sentence2", pa.string()),
        ("score", pa.float64()),
    ]
)
FIELDS = ("sentence1", "sentence2", "score")
MTEB_ROOT = "mteb"
MTEB_PINS = "mteb_sts"  # resources/checksums/mteb_sts.tsv: name<TAB>commit MTEB evaluates


def mteb_revision(source: dict) -> str:
    """The revision an ``mteb_sts`` source reads: its own, else the commit MTEB pins for the task."""
    return source.get("revision") or pinned_checksum(MTEB_PINS, source["name"]) or "main"


def _pair(record: dict, where: str, row: int) -> tuple[str, str, float]:
    missing = [f for f in FIELDS if f not in record or record[f] is None]
    if missing:
        raise DataError(where, f"row {row}: missing field(s) {missing} (an STS pair has sentence1, sentence2, score)")
    score = record["score"]
    try:
        value = float(score)
    except (TypeError, ValueError):
        value = math.nan
    if isinstance(score, bool) or not math.isfinite(value):
        raise DataError(where, f"row {row}: score {score!r} is not a finite number")
    return str(record["sentence1"]), str(record["sentence2"]), value


def pair_rows(records: Iterable[tuple[int, dict]], split: str, where: str) -> list[dict]:
    """Rows of one split; a record's own ``id`` is kept, else the row number is its id."""
    rows = []
    for row, record in records:
        sentence1, sentence2, score = _pair(record, where, row)
        pair_id = require_id(record["id"], where, row, "id") if "id" in record else str(row)
        rows.append({"query_set": split, "id": pair_id, "sentence1": sentence1, "sentence2": sentence2, "score": score})
    return rows


def check_pairs(rows: list[dict], split: str, where: str) -> list[dict]:
    """The STS checks for one split; returns its counted warnings."""
    if len(rows) < 2:
        raise DataError(where, f"split {split!r} has {len(rows)} pair(s); a correlation needs at least two")
    duplicates = sorted(i for i, n in Counter(r["id"] for r in rows).items() if n > 1)
    if duplicates:
        raise DataError(where, f"split {split!r}: {len(duplicates)} duplicate pair id(s): {first_few(duplicates)}")
    if len({r["score"] for r in rows}) < 2:
        raise DataError(where, f"split {split!r}: every gold score is {rows[0]['score']}; Spearman is undefined")
    empty = [r["id"] for r in rows if not r["sentence1"].strip() or not r["sentence2"].strip()]
    if not empty:
        return []
    return [{"check": "empty_sentence", "file": PAIRS_FILE, "count": len(empty), "examples": empty[:5]}]


def write_sts_collection(out_dir: Path, splits: dict[str, tuple[list[dict], str]], provenance: dict) -> dict:
    """Check every split, write pairs.parquet then manifest.json (each atomically); return the manifest."""
    warnings, rows = [], []
    for split, (split_rows, where) in splits.items():
        warnings += check_pairs(split_rows, split, where)
        rows += split_rows
    out_dir = Path(out_dir)
    (out_dir / MANIFEST_FILE).unlink(missing_ok=True)  # a manifest always describes the pairs beside it
    write_parquet(out_dir / PAIRS_FILE, pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA))
    provenance = dict(provenance)
    notes = provenance.pop("warnings", [])
    manifest = {
        "provenance": provenance,
        "counts": {"pairs": {s: len(r) for s, (r, _) in splits.items()}},
        "validation": {"warnings": warnings, "notes": list(notes)},
    }
    write_json(out_dir / MANIFEST_FILE, manifest)
    return manifest


def _local_split(folder: Path, split: str) -> Path:
    for name in (f"{split}.jsonl", f"{split}.jsonl.gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(folder / f"{split}.jsonl", "file not found (an sts_local folder holds <split>.jsonl per query set)")


def prepare_sts_local(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    folder = Path(source["path"])
    splits = {}
    for split in query_sets:
        path = _local_split(folder, split)
        splits[split] = (pair_rows(iter_json_records(path), split, str(path)), str(path))
    return write_sts_collection(out_dir, splits, {"type": "sts_local", "path": str(folder)})


def _dataset_records(ds) -> Iterator[tuple[int, dict]]:
    columns = [c for c in ("id", *FIELDS) if c in ds.column_names]
    yield from enumerate(ds.select_columns(columns).to_list(), 1)


def prepare_mteb_sts(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    from .coir import HubReader  # the hub reader CoIR uses: revisions recorded, local_root switch
    from .download import check_columns

    name = source["name"]
    root = source.get("hub_root", MTEB_ROOT)
    reader = HubReader({**source, "hub_root": root, "revision": mteb_revision(source)}, work_dir)
    dataset = reader.load(name)
    splits = {}
    for split in query_sets:
        if split not in dataset:
            raise DataError(f"{root}/{name}", f"no split {split!r} (has {', '.join(dataset)})")
        where = f"{root}/{name}[{split}]"
        check_columns(dataset[split], FIELDS, where)
        splits[split] = (pair_rows(_dataset_records(dataset[split]), split, where), where)
    provenance = {
        "type": "mteb_sts",
        "name": name,
        "datasets": reader.used,
        "pins": reader.pins(),
        "warnings": reader.notes(),
    }
    return write_sts_collection(out_dir, splits, provenance)


def read_pairs(path: str | Path, query_set: str) -> pa.Table:
    """One split's pairs, in file order."""
    from .canonical import check_schema

    check_schema(path, PAIRS_SCHEMA)
    table = pq.read_table(path, columns=PAIRS_SCHEMA.names)
    table = table.filter(pa.compute.equal(table["query_set"], query_set))
    if table.num_rows == 0:
        raise DataError(path, f"no pairs for query set {query_set!r}")
    return table
