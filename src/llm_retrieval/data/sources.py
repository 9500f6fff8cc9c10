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


# Sources read from files a user fetches by hand (docs/data.md): (what they hold, where to get them).
# A missing one does not stop the plan (the collection's size_estimate sizes it): it is left out of the
# preparing job's inputs, a warning names it when the plan is built, and the job fails with
# MissingLocalDataError. beir_local and sts_local stay plain inputs: their folder may be a workflow output.
BY_HAND: dict[str, tuple[str, str]] = {
    "toolbench": (toolbench.LOCAL_FILES, toolbench.GET_FROM),
    "qrecc": (qrecc.LOCAL_FILES, qrecc.GET_FROM),
}


class MissingLocalDataError(DataError):
    """A collection's hand-fetched files are not there: which paths, what they hold, where to get them."""


def prepare_collection(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    kind = source["type"]
    if kind not in PREPARERS:
        raise DataError(out_dir, f"unknown source type {kind!r} (known: {', '.join(sorted(PREPARERS))})")
    problem = missing_local_data(source)
    if problem:
        where = f"collections.{Path(out_dir).name}"
        raise MissingLocalDataError(where, f"{problem}. Put them there and rerun the same command")
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


def _config_key(input_name: str) -> str:
    """The source key an input of local_inputs comes from: folder -> path, turns_test -> turns.test."""
    return "path" if input_name == "folder" else input_name.replace("_", ".", 1)


def missing_local_inputs(source: dict) -> dict[str, str]:
    """The hand-fetched inputs (BY_HAND sources) that do not exist, by input name."""
    if source["type"] not in BY_HAND:
        return {}
    return {name: path for name, path in local_inputs(source).items() if not Path(path).exists()}


def planned_local_inputs(source: dict) -> dict[str, str]:
    """The preparing job's inputs: local_inputs less the hand-fetched ones that are missing (the job
    reports those when it runs, so a plan builds on a fresh clone)."""
    missing = missing_local_inputs(source)
    return {name: path for name, path in local_inputs(source).items() if name not in missing}


def missing_local_data(source: dict) -> str | None:
    """Which hand-fetched files of a source are missing, what they must hold and where to get them; None
    when all are there."""
    missing = missing_local_inputs(source)
    if not missing:
        return None
    holds, get_from = BY_HAND[source["type"]]
    paths = ", ".join(f"{path} (source.{_config_key(name)})" for name, path in missing.items())
    return f"{source['type']} data not found: {paths}. It needs: {holds}. Where to get it: {get_from} (docs/data.md)"
