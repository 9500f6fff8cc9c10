"""NLI training groups (sentence similarity): ``sentence-transformers/all-nli``, config ``triplet``.

Each row is ``anchor, positive, negative`` (SNLI + MultiNLI: the entailment as the positive, the
contradiction as the hard negative; 557,850 rows in ``train``), read from the repo's Parquet files
(``<config>/<split>-*.parquet``) with the ``parquet`` builder at a pinned revision, and written as
TRAIN_GROUPS_SCHEMA Parquet: the anchor is the query, one positive, one negative. A passage id is a
hash of its text, so one sentence is one passage wherever it occurs.

Source keys: ``dataset`` (default ``sentence-transformers/all-nli``), ``config`` (default
``triplet``), ``split`` (default ``train``), ``revision``, ``data_root`` (a local folder read as
``<data_root>/<dataset>/<config>/<split>-*.parquet``: offline tests, mirrors), ``cache_dir``, ``limit``.

Policy: a row missing a field or with an empty anchor or positive is an error naming the file and row;
a row with an empty negative is dropped and counted, so every group has its hard negative (a source does
not mix groups with and without: data/training_sources.py).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa

from ..atomic import parquet_writer
from .canonical import TRAIN_GROUPS_SCHEMA, DataError
from .download import SHA, check_columns

DEFAULT_DATASET, DEFAULT_CONFIG, DEFAULT_SPLIT = "sentence-transformers/all-nli", "triplet", "train"
FIELDS = ("anchor", "positive", "negative")
BATCH = 10_000


def passage_id(text: str) -> str:
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:16]


def nli_files(source: dict) -> tuple[str, str]:
    """(the Parquet files' location, the revision read: 'local' for a data_root)."""
    dataset = source.get("dataset", DEFAULT_DATASET)
    pattern = f"{source.get('config', DEFAULT_CONFIG)}/{source.get('split', DEFAULT_SPLIT)}-*.parquet"
    if source.get("data_root"):
        folder = Path(source["data_root"]) / dataset
        if not list(folder.glob(pattern)):
            raise DataError(folder / pattern, "no Parquet file matches under the local data_root")
        return str(folder / pattern), "local"
    revision = source.get("revision", "main")
    return f"hf://datasets/{dataset}@{revision}/{pattern}", revision


def _group(row: int, anchor, positive, negative, where: str) -> dict:
    if not isinstance(anchor, str) or not anchor.strip() or not isinstance(positive, str) or not positive.strip():
        raise DataError(
            where, f"row {row}: anchor and positive must be non-empty strings (got {anchor!r:.40}, {positive!r:.40})"
        )
    negatives = [{"docid": passage_id(negative), "title": "", "text": negative}] if negative else []
    return {
        "query_id": str(row),
        "query": anchor,
        "positive_passages": [{"docid": passage_id(positive), "title": "", "text": positive}],
        "negative_passages": negatives,
    }


def prepare_nli_groups(source: dict, out_path: Path, work_dir: Path) -> dict:
    """Write ``out_path`` (TRAIN_GROUPS_SCHEMA Parquet, atomically); return provenance and counts."""
    import datasets  # heavy import, only when the source is prepared

    where, revision = nli_files(source)
    cache_dir = str(source.get("cache_dir", Path(work_dir) / "hf_datasets"))
    try:
        ds = datasets.load_dataset("parquet", data_files=where, split="train", cache_dir=cache_dir)
    except Exception as err:  # network, missing file, bad Parquet: say which files
        raise DataError(where, f"could not load with the parquet builder: {err}") from err
    check_columns(ds, FIELDS, where)
    limit, counts = source.get("limit"), {"groups": 0, "dropped_no_negative": 0}
    with parquet_writer(out_path, TRAIN_GROUPS_SCHEMA) as writer:
        for start in range(0, len(ds) if limit is None else min(limit, len(ds)), BATCH):
            batch = ds.select_columns(list(FIELDS))[
                start : start + BATCH if limit is None else min(start + BATCH, limit)
            ]
            groups = [
                _group(start + i + 1, a, p, n, where) for i, (a, p, n) in enumerate(zip(*(batch[f] for f in FIELDS)))
            ]
            kept = [g for g in groups if g["negative_passages"]]
            counts["dropped_no_negative"] += len(groups) - len(kept)
            groups = kept
            writer.write_table(pa.Table.from_pylist(groups, schema=TRAIN_GROUPS_SCHEMA))
            counts["groups"] += len(groups)
        if counts["groups"] == 0:  # raised inside the writer: no file appears
            raise DataError(where, "no NLI triplet to train on")
    notes = (
        []
        if revision == "local" or SHA.match(revision)
        else [f"{where} read at unpinned revision {revision!r}; pin a commit sha in the source for reproducibility"]
    )
    return {
        "type": "nli",
        "files": where,
        "revision": revision,
        "counts": counts,
        "warnings": notes,
        "pins": {where: revision} if SHA.match(revision) else {},
    }
