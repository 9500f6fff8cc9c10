"""Sentence similarity built offline from the standard library's docstrings: the offline stand-ins of
MTEB's English STS sets (``sentence1, sentence2, score``) and of all-nli's triplets (``anchor, positive,
negative``), with the upstream field names, for the second study's offline slice (config/luo2024-demo.yaml).

Both read the stdlib code-search pairs (``build_stdlib_codesearch``: one row per documented function, with
its module, docstring and train/test split; data/demo.py) and relate a function's docstring sentences by
where they come from. A function's *query sentence* is its docstring's first sentence (demo.first_sentence);
its *other sentence* the first further sentence of its docstring with at least 4 words.

- ``stdlib_sts`` (a collection source; evaluation kind ``sts``): per query set (a split) up to ``limit``
  pairs (default 200), sentence1 the query sentence of one of the split's functions, sentence2 chosen by
  the md5 of the function's id among four relations, graded as MTEB's 0-5 scale: the function's other
  sentence (5), another function's query sentence from the same module (3), from the same top-level package
  (1), from another package (0). A function without the relation its hash chose takes the next one down.
  The gold scores are structural relatedness, not human judgements: a stand-in that exercises the STS rules.
- ``stdlib_nli`` (a training source): per function of the ``train`` split with an other sentence (up to
  ``limit``, in md5 order of the ids), anchor its query sentence, positive its other sentence (as an entailment), hard negative the
  query sentence of another function of the same module (as a contradiction; the same package where the
  module has no other). Written as training groups (canonical.TRAIN_GROUPS_SCHEMA) exactly as the ``nli``
  source writes all-nli's triplets. Its splits never meet the STS set's (test) functions.

Partners are chosen by md5, so a build is the same on every machine. Bad input (a pairs file in another
schema, no pair to write) is a DataError naming the file.
"""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

import pyarrow as pa

from ..atomic import write_parquet
from .canonical import TRAIN_GROUPS_SCHEMA, DataError, read_table
from .demo import MIN_DOC_WORDS, PAIRS_SCHEMA
from .nli import passage_id
from .sts import write_sts_collection

DEFAULT_STS_PAIRS = 200
# Relation -> gold score (MTEB's STS scale, 0-5), strongest first.
GRADES = {"same_function": 5.0, "same_module": 3.0, "same_package": 1.0, "other_package": 0.0}


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def other_sentence(docstring: str, first: str) -> str | None:
    """The first sentence of the docstring after its query sentence with at least MIN_DOC_WORDS words."""
    text = " ".join(docstring.split())
    sentences = re.split(r"(?<=[.!?])\s+", text)
    for sentence in sentences[1:]:
        if len(sentence.split()) >= MIN_DOC_WORDS and sentence != first and sentence not in first:
            return sentence
    return None


class Relatives:
    """The functions of one split, indexed by module and package, with their sentences."""

    def __init__(self, rows: list[dict]):
        self.rows = sorted(rows, key=lambda r: r["id"])
        self.by_module: dict[str, list[dict]] = {}
        self.by_package: dict[str, list[dict]] = {}
        for row in self.rows:
            row["other"] = other_sentence(row["docstring"], row["query"])
            self.by_module.setdefault(row["module"], []).append(row)
            self.by_package.setdefault(_package(row), []).append(row)

    def partner(self, row: dict, relation: str) -> str | None:
        """The sentence paired with ``row``'s query sentence under ``relation`` (None: the split has none)."""
        if relation == "same_function":
            return row["other"]
        if relation == "same_module":
            pool = self.by_module[row["module"]]
        elif relation == "same_package":
            pool = [r for r in self.by_package[_package(row)] if r["module"] != row["module"]]
        else:
            pool = self.rows
        pool = [r for r in pool if _package(r) != _package(row)] if relation == "other_package" else pool
        pool = [r for r in pool if r["id"] != row["id"] and r["query"] != row["query"]]
        if not pool:
            return None
        return min(pool, key=lambda r: _md5(row["id"] + "|" + r["id"]))["query"]


def _package(row: dict) -> str:
    return row["module"].split(".", 1)[0]


def _split_rows(path: str | Path, split: str) -> list[dict]:
    rows = [r for r in read_table(path, PAIRS_SCHEMA).to_pylist() if r["split"] == split]
    if not rows:
        raise DataError(path, f"no stdlib function in split {split!r} (build_stdlib_codesearch writes train and test)")
    return rows


def sts_pairs(rows: list[dict], limit: int = DEFAULT_STS_PAIRS) -> list[dict]:
    """Graded sentence pairs of one split (the module docstring says how they are chosen)."""
    relatives, relations, pairs = Relatives(rows), list(GRADES), []
    for row in sorted(relatives.rows, key=lambda r: _md5(r["id"]))[:limit]:
        start = int(_md5(row["id"]), 16) % len(relations)
        for relation in relations[start:]:
            partner = relatives.partner(row, relation)
            if partner is not None:
                pairs.append({"id": row["id"], "sentence1": row["query"], "sentence2": partner, "relation": relation})
                break
    return pairs


def prepare_stdlib_sts(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    """An STS collection (data/sts.py's layout) from the stdlib pairs file ``source["pairs"]``."""
    where, splits = str(source["pairs"]), {}
    for split in query_sets:
        pairs = sts_pairs(_split_rows(where, split), source.get("limit") or DEFAULT_STS_PAIRS)
        rows = [
            {"query_set": split, "id": p["id"], "sentence1": p["sentence1"], "sentence2": p["sentence2"]}
            | {"score": GRADES[p["relation"]]}
            for p in pairs
        ]
        splits[split] = (rows, f"{where}[{split}]")
    return write_sts_collection(out_dir, splits, {"type": "stdlib_sts", "pairs_file": where})


def nli_triplets(rows: list[dict], limit: int | None = None) -> list[tuple[str, str, str, str]]:
    """(function id, anchor, positive, negative) of the split's functions that have an other sentence."""
    relatives, triplets = Relatives(rows), []
    for row in sorted(relatives.rows, key=lambda r: _md5(r["id"])):  # a limit takes a spread over the modules
        negative = relatives.partner(row, "same_module") or relatives.partner(row, "same_package")
        if row["other"] is not None and negative is not None:
            triplets.append((row["id"], row["query"], row["other"], negative))
    return triplets[:limit] if limit else triplets


def prepare_stdlib_nli_groups(source: dict, pairs_path: str | Path, out_path: Path) -> dict:
    """Training groups (TRAIN_GROUPS_SCHEMA, atomically) from the train split's triplets."""
    triplets = nli_triplets(_split_rows(pairs_path, "train"), source.get("limit"))
    if not triplets:
        raise DataError(pairs_path, "no stdlib function with a second docstring sentence to train on")
    groups = [
        {
            "query_id": function,
            "query": anchor,
            "positive_passages": [{"docid": passage_id(positive), "title": "", "text": positive}],
            "negative_passages": [{"docid": passage_id(negative), "title": "", "text": negative}],
        }
        for function, anchor, positive, negative in triplets
    ]
    write_parquet(out_path, pa.Table.from_pylist(groups, schema=TRAIN_GROUPS_SCHEMA))
    return {"type": "stdlib_nli", "pairs_file": str(pairs_path), "groups": len(groups)}
