"""Every training source, by the ``source.type`` a training task names (``training.data``, ``training_tasks.<t>.source``).

The contract of a groups preparer (what a new training source registers here):

- signature: ``prepare(request: GroupsRequest) -> dict``; ``request.source`` is the task's ``source`` mapping
  as validated by the schema (its defaults filled), ``request.out_path`` the groups Parquet to write,
  ``request.work_dir`` a folder for downloads and caches, ``request.inputs`` the local files the workflow
  gives it (a source naming a ``collection`` gets that collection's canonical ``corpus`` / ``queries`` /
  ``qrels`` Parquet and its BM25 ``index`` folder; a source of demo.PAIRS_SOURCE_TYPES gets the stdlib
  ``pairs`` file; other sources get none), ``request.bm25`` the config's
  ``bm25`` section (for mining);
- output: ``out_path`` written atomically (``llm_retrieval.atomic``) in ``canonical.TRAIN_GROUPS_SCHEMA``:
  one row per training query, ``query_id: string``, ``query: string`` (the text the retriever reads, e.g. a
  conversation's context and question already joined), ``positive_passages`` and ``negative_passages``:
  ``list<struct<docid: string, title: string, text: string>>``. At least one positive per row. Hard negatives
  are optional per *source*: a source without them (e.g. pairs only) writes an empty ``negative_passages``
  on every row and is trained with in-batch negatives alone; a source must not mix rows with and without;
- returns the provenance (type, pins, counts, warnings) for the job's log;
- bad input: ``canonical.DataError`` naming the file / row, what is wrong and what to do.

A new source: a module with its preparer, a row in PREPARERS, and its type in the schema's
``$defs.training_source`` enum (tests/test_recipes.py checks the two agree). Each task's groups are
prepared once (``training_groups`` rule, one job per task) and shared by every recipe that uses the task.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .canonical import DataError


@dataclass(frozen=True)
class GroupsRequest:
    source: dict
    out_path: Path
    work_dir: Path
    inputs: dict = field(default_factory=dict)  # name -> local path (see the module docstring)
    bm25: dict = field(default_factory=dict)


GroupsPreparer = Callable[[GroupsRequest], dict]


def _tevatron(request: GroupsRequest) -> dict:
    from .tevatron import prepare_training_groups

    return prepare_training_groups(request.source, request.out_path, request.work_dir)


def _bm25_mined(request: GroupsRequest) -> dict:
    from ..train.mine import mine_bm25_groups

    source = request.source
    count = mine_bm25_groups(
        Path(request.inputs["corpus"]).parent,
        request.inputs["index"],
        source["query_set"],
        request.out_path,
        source["depth"],
        request.bm25,
    )
    return {"type": "bm25_mined", "collection": source["collection"], "query_set": source["query_set"], "groups": count}


def _nli(request: GroupsRequest) -> dict:
    from .nli import prepare_nli_groups

    return prepare_nli_groups(request.source, request.out_path, request.work_dir)


def _stdlib_nli(request: GroupsRequest) -> dict:
    from .stdlib_similarity import prepare_stdlib_nli_groups

    return prepare_stdlib_nli_groups(request.source, request.inputs["pairs"], request.out_path)


PREPARERS: dict[str, GroupsPreparer] = {
    "tevatron": _tevatron,  # Tevatron's groups (RepLLaMA's MS MARCO training data)
    "bm25_mined": _bm25_mined,  # a collection's train queries, negatives mined with its BM25 index
    "nli": _nli,  # NLI triplets: anchor, entailment (positive), contradiction (hard negative)
    "stdlib_nli": _stdlib_nli,  # the same from stdlib docstrings, offline (data/stdlib_similarity.py)
}


def needs_collection(source: dict) -> str | None:
    """The collection whose canonical files and BM25 index the source reads (None: it reads none)."""
    return source.get("collection")


def prepare_groups(request: GroupsRequest) -> dict:
    kind = request.source["type"]
    if kind not in PREPARERS:
        raise DataError(
            request.out_path, f"unknown training source type {kind!r} (known: {', '.join(sorted(PREPARERS))})"
        )
    return PREPARERS[kind](request)
