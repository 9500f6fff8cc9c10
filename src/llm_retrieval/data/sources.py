"""Every data source, by the ``source.type`` a collection names in config.

Each preparer takes the collection's ``source`` mapping, the query set names to
produce, the output folder (canonical layout, see canonical.py) and a work folder
for downloads, writes corpus/queries/qrels Parquet atomically and returns the
provenance that goes into manifest.json.

A new source: write its module with a ``prepare_*`` function, add a row to
PREPARERS and its type to the schema's ``source.type`` enum (a test checks the two
agree). The source modules never import this one.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from . import beir, coir, demo, longembed, msmarco, qrecc, stdlib_similarity, sts, toolbench
from .canonical import DataError

Preparer = Callable[[dict, list, Path, Path], dict]

PREPARERS: dict[str, Preparer] = {
    "beir": beir.prepare_beir,
    "beir_local": beir.prepare_beir_local,
    "coir": coir.prepare_coir,
    "longembed": longembed.prepare_longembed,  # long documents: the input-length axis
    "msmarco": msmarco.prepare_msmarco,
    "mteb_sts": sts.prepare_mteb_sts,  # sentence pairs (evaluation kind sts): pairs.parquet, not corpus/queries/qrels
    "sts_local": sts.prepare_sts_local,
    "stdlib_sts": stdlib_similarity.prepare_stdlib_sts,  # the offline slice's STS set, from stdlib docstrings
    "toolbench": toolbench.prepare_toolbench,  # tool retrieval: queries -> API documents (local files)
    "qrecc": qrecc.prepare_qrecc,  # conversational search: context + question as the query (local files)
    "stdlib_codesearch": demo.prepare_stdlib_codesearch,  # the offline demo's text-to-code source
}


def prepare_collection(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    kind = source["type"]
    if kind not in PREPARERS:
        raise DataError(out_dir, f"unknown source type {kind!r} (known: {', '.join(sorted(PREPARERS))})")
    return PREPARERS[kind](source, query_sets, Path(out_dir), Path(work_dir))


def local_inputs(source: dict) -> dict[str, str]:
    """The local files or folders a source is read from, by name: the preparing rule's inputs (a change
    to them reruns it). A downloaded source has none."""
    kind = source["type"]
    if kind in ("beir_local", "toolbench", "sts_local"):
        return {"folder": source["path"]}
    if kind == "qrecc":
        named = {"passages": source["passages"], **{f"turns_{s}": p for s, p in source["turns"].items()}}
        return named | {f"qrels_{s}": p for s, p in source.get("qrels", {}).items()}
    return {}
