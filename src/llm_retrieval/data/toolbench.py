"""ToolBench tool retrieval (ToolLLM, Qin et al. 2023): queries -> the API documents that serve them.

Read from a local copy of ToolBench's released data (``data.zip`` from the links in the
OpenBMB/ToolBench README, licence CC BY-NC 4.0; ``source.path`` = its ``data/retrieval/G1`` folder,
or G2/G3), in the files its ``preprocess/preprocess_retriever_data.py`` writes with pandas:

- ``corpus.tsv``: header ``docid<TAB>document_content``; the content is one API's JSON description
  (CSV-quoted, quotes doubled); the script appends a document once per query that lists the API,
  so identical rows repeat: kept once (the same id with two contents is an error);
- ``<split>.query.txt``: ``qid<TAB>query_text``, no header, one row per (query, relevant API): repeats
  of the same row are kept once;
- ``qrels.<split>.tsv``: ``qid<TAB>0<TAB>docid<TAB>1``, no header.

A query set is a split (``test`` to evaluate, ``train`` for training groups). The document text is
the JSON description as released, with no title.
"""

from __future__ import annotations

import csv
from pathlib import Path

from .canonical import CORPUS_FILE, QRELS_FILE, QUERIES_FILE, DataError, write_corpus, write_qrels, write_queries
from .staging import finish_collection, staged_collection
from .textfiles import iter_lines

CORPUS_HEADER = ["docid", "document_content"]
# Fetched by hand (sources.BY_HAND): what the folder holds and where it comes from, for the error and the
# plan-time warning when it is missing.
LOCAL_FILES = "corpus.tsv, and <split>.query.txt and qrels.<split>.tsv for each query set"
GET_FROM = (
    "data.zip from the links in the OpenBMB/ToolBench README (Google Drive or Tsinghua Cloud; the workflow "
    "cannot fetch it), unpacked so that source.path is its data/retrieval/G1 (or G2, G3) folder"
)


def _rows(path: Path, fields: int, header: list[str] | None = None):
    """(line number, fields) of a pandas-written TSV (QUOTE_MINIMAL with '"'; JSON keeps newlines escaped,
    so one record is one line)."""
    if not path.exists():
        raise DataError(path, "file not found (source.path is ToolBench's data/retrieval/<G1|G2|G3> folder)")
    lines = iter_lines(path)
    if header is not None:
        _, first = next(lines, (1, ""))
        if first.split("\t") != header:
            raise DataError(path, f"line 1: expected the header {chr(9).join(header)!r}, got {first[:80]!r}")
    for lineno, line in lines:
        if not line.strip():
            continue
        try:
            row = next(csv.reader([line], delimiter="\t", strict=True))
        except csv.Error as err:
            raise DataError(path, f"line {lineno}: malformed quoted field ({err})") from err
        if len(row) != fields:
            raise DataError(path, f"line {lineno}: expected {fields} tab-separated fields, got {len(row)}")
        yield lineno, row


def read_corpus(path: Path) -> list[dict]:
    docs: dict[str, str] = {}
    for lineno, (docid, content) in _rows(path, 2, CORPUS_HEADER):
        if docs.setdefault(docid, content) != content:
            raise DataError(path, f"line {lineno}: document id {docid!r} has two different contents")
    return [{"id": docid, "title": "", "text": content} for docid, content in docs.items()]


def read_split(folder: Path, split: str) -> tuple[list[dict], list[dict]]:
    """(queries, qrels) of one split."""
    path = folder / f"{split}.query.txt"
    texts: dict[str, str] = {}
    for lineno, (qid, text) in _rows(path, 2):
        if texts.setdefault(qid, text) != text:
            raise DataError(path, f"line {lineno}: query id {qid!r} has two different texts")
    qrels = []
    qrels_path = folder / f"qrels.{split}.tsv"
    for lineno, (qid, _, docid, label) in _rows(qrels_path, 4):
        try:
            relevance = int(label)
        except ValueError as err:
            raise DataError(qrels_path, f"line {lineno}: label {label!r} is not an integer") from err
        qrels.append({"query_set": split, "query_id": qid, "doc_id": docid, "relevance": relevance})
    queries = [{"query_set": split, "id": qid, "text": text} for qid, text in texts.items()]
    return queries, qrels


def prepare_toolbench(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    folder = Path(source["path"])
    queries, qrels = [], []
    for split in query_sets:
        split_queries, split_qrels = read_split(folder, split)
        queries += split_queries
        qrels += split_qrels
    origins = {
        CORPUS_FILE: str(folder / "corpus.tsv"),
        QUERIES_FILE: str(folder / "<split>.query.txt"),
        QRELS_FILE: str(folder / "qrels.<split>.tsv"),
    }
    with staged_collection(out_dir) as stage:
        n_docs = write_corpus(stage / CORPUS_FILE, read_corpus(folder / "corpus.tsv"))
        write_queries(stage / QUERIES_FILE, queries)
        write_qrels(stage / QRELS_FILE, qrels)
        provenance = {
            "type": "toolbench",
            "path": str(folder),
            "documents_read": n_docs,
            "queries_read": len(queries),
            "qrels_read": len(qrels),
        }
        return finish_collection(stage, provenance, query_sets, origins)
