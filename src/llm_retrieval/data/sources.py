"""Every data source, by the ``source.type`` a collection names in config.

Each preparer takes the collection's ``source`` mapping, the query set names to
produce, the output folder (canonical layout, see canonical.py) and a work folder
for downloads, writes corpus/queries/qrels Parquet atomically and returns the
provenance that goes into manifest.json.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from .canonical import DataError

Preparer = Callable[[dict, list, Path, Path], dict]
PREPARERS: dict[str, Preparer] = {}


def preparer(kind: str):
    def register(func: Preparer) -> Preparer:
        PREPARERS[kind] = func
        return func
    return register


def prepare_collection(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    kind = source["type"]
    if kind not in PREPARERS:
        raise DataError(out_dir, f"unknown source type {kind!r} (known: {', '.join(sorted(PREPARERS))})")
    return PREPARERS[kind](source, query_sets, Path(out_dir), Path(work_dir))


# Each source module registers itself with @preparer on import. Imported last (as
# modules, not names) so the registry exists first and importing a source module
# directly works too.
from . import beir, coir, msmarco  # noqa: E402,F401
from .tevatron import prepare_training_groups  # noqa: E402,F401
from .validate import finish_collection, staged_collection  # noqa: E402,F401
from . import demo  # noqa: E402,F401  (the offline demo's sources)
