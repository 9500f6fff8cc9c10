"""Training groups from a Tevatron dataset (RepLLaMA's ``Tevatron/msmarco-passage-aug``).

Records ``query_id, query, positive_passages[{docid,title,text}], negative_passages[...]``
are read from the repo's ``.jsonl.gz`` with the ``json`` builder (its loader script
does not run under ``datasets`` 4+) and streamed into TRAIN_GROUPS_SCHEMA Parquet.

Source keys: ``dataset`` (repo id), ``revision``, ``files`` (default ``[train.jsonl.gz]``),
``data_root`` (a local folder read as ``<data_root>/<dataset>/<file>``, for offline
tests and mirrors), ``cache_dir`` (default ``<work_dir>/hf_datasets``), ``limit`` (first
N groups, for smoke runs).

Policy: a group without a positive passage cannot train InfoNCE: dropped and
counted; a group without negatives is kept (in-batch negatives still apply) and
counted; a record missing a field is an error naming the file and the row.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
from tqdm import tqdm

from ..atomic import parquet_writer
from .canonical import TRAIN_GROUPS_SCHEMA, DataError
from .download import JsonFiles, check_columns
from .textfiles import require_id

DEFAULT_DATASET = "Tevatron/msmarco-passage-aug"
FIELDS = ("query_id", "query", "positive_passages", "negative_passages")
BATCH = 2_000  # groups carry ~30 passages each: keep batches small


def _passages(items, where: str, row: int, field: str) -> list[dict]:
    out = []
    for p in items or []:
        if not isinstance(p, dict) or p.get("docid") is None:
            raise DataError(where, f"row {row}: {field} entry without a docid: {str(p)[:80]!r}")
        out.append(
            {
                "docid": require_id(p["docid"], where, row, f"{field}.docid"),
                "title": p.get("title") or "",
                "text": p.get("text") or "",
            }
        )
    return out


def prepare_training_groups(source: dict, out_path: Path, work_dir: Path) -> dict:
    """Write ``out_path`` (TRAIN_GROUPS_SCHEMA Parquet, atomically); return provenance and counts."""
    dataset = source.get("dataset", DEFAULT_DATASET)
    files = source.get("files", ["train.jsonl.gz"])
    limit = source.get("limit")
    reader = JsonFiles(source, work_dir)
    counts = {"groups": 0, "dropped_no_positive": 0, "no_negatives": 0, "positives": 0, "negatives": 0}
    with parquet_writer(out_path, TRAIN_GROUPS_SCHEMA) as writer:
        for file in files:
            ds = reader.load("train", dataset, file)
            where = f"{dataset}/{file}"
            check_columns(ds, FIELDS, where)
            row = 0
            for batch in tqdm(
                ds.select_columns(list(FIELDS)).iter(batch_size=BATCH),
                total=-(-len(ds) // BATCH),
                desc=f"groups {file}",
                unit="batch",
            ):
                groups = []
                for qid, query, pos, neg in zip(*(batch[f] for f in FIELDS)):
                    row += 1
                    if qid is None or query is None:
                        raise DataError(where, f"row {row}: missing query_id or query")
                    positives = _passages(pos, where, row, "positive_passages")
                    negatives = _passages(neg, where, row, "negative_passages")
                    if not positives:
                        counts["dropped_no_positive"] += 1
                        continue
                    counts["no_negatives"] += not negatives
                    counts["positives"] += len(positives)
                    counts["negatives"] += len(negatives)
                    groups.append(
                        {
                            "query_id": str(qid),
                            "query": query,
                            "positive_passages": positives,
                            "negative_passages": negatives,
                        }
                    )
                if limit is not None:
                    groups = groups[: max(0, limit - counts["groups"])]
                if groups:
                    writer.write_table(pa.Table.from_pylist(groups, schema=TRAIN_GROUPS_SCHEMA))
                counts["groups"] += len(groups)
                if limit is not None and counts["groups"] >= limit:
                    break
        if counts["groups"] == 0:  # raised inside the writer: no file appears
            raise DataError(dataset, "no training group with a positive passage")
    return {
        "type": "tevatron",
        "dataset": dataset,
        "files": files,
        "datasets": reader.used,
        "pins": reader.pins(),
        "counts": counts,
        "warnings": reader.notes(),
    }
