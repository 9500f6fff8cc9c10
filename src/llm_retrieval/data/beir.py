"""BEIR: a local BEIR-layout folder (``beir_local``) or an official zip (``beir``).

BEIR layout: ``corpus.jsonl`` (``_id, title, text``), ``queries.jsonl`` (``_id, text``),
``qrels/<split>.tsv`` with the header ``query-id<TAB>corpus-id<TAB>score``. A query set
is a split; its queries are the ones its qrels name (BEIR's GenericDataLoader rule).
The corpus is streamed line by line into Parquet, so memory stays bounded.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from .canonical import CORPUS_FILE, QRELS_FILE, QUERIES_FILE, DataError, write_corpus, write_qrels, write_queries
from .download import fetch, pinned_checksum, safe_extract
from .staging import finish_collection, staged_collection
from .textfiles import iter_json_records, iter_lines, require_id

BEIR_BASE_URL = "https://public.ukp.informatik.tu-darmstadt.de/thakur/BEIR/datasets"
BASE_URL_ENV = "LLM_RETRIEVAL_BEIR_URL"  # e.g. a mirror, or a local test server
QRELS_HEADER = ["query-id", "corpus-id", "score"]
CORPUS_BATCH = 10_000  # documents per Parquet row group; bounds memory on big corpora


def iter_jsonl(path: Path, required: tuple[str, ...]) -> Iterator[tuple[int, dict]]:
    """``(line number, record)`` for each non-blank line; errors name the file and line.

    ``_id`` must be a string or a number: a ``null`` id would silently become ``"None"``.
    """
    for lineno, record in iter_json_records(path):
        missing = [key for key in required if key not in record]
        if missing:
            raise DataError(path, f"line {lineno}: missing field(s) {missing}")
        if "_id" in record:
            require_id(record["_id"], path, lineno, unit="line")
        yield lineno, record


def _text(value, path: Path, lineno: int, field: str) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DataError(path, f"line {lineno}: field {field!r} must be a string, got {type(value).__name__}")
    return value


def iter_beir_corpus(path: Path) -> Iterator[dict]:
    for lineno, rec in tqdm(iter_jsonl(path, ("_id", "text")), desc=f"corpus {path.parent.name}", unit="doc"):
        yield {
            "id": str(rec["_id"]),
            "title": _text(rec.get("title"), path, lineno, "title"),
            "text": _text(rec["text"], path, lineno, "text"),
        }


def read_beir_qrels(path: Path) -> list[tuple[str, str, int]]:
    if not path.exists():
        raise DataError(path, "qrels file not found (the query set name is the split name)")
    rows, lines = [], iter_lines(path)
    _, first = next(lines, (1, ""))
    header = first.split("\t")
    if header != QRELS_HEADER:
        raise DataError(path, f"line 1: expected the header {chr(9).join(QRELS_HEADER)!r}, got {chr(9).join(header)!r}")
    for lineno, line in lines:
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != 3:
            raise DataError(path, f"line {lineno}: expected 3 tab-separated fields, got {len(fields)}")
        try:
            score = int(fields[2])
        except ValueError as err:
            raise DataError(path, f"line {lineno}: score {fields[2]!r} is not an integer") from err
        rows.append((fields[0], fields[1], score))
    return rows


def beir_origins(folder: Path, query_sets: list[str]) -> dict[str, str]:
    """Which source file each collection file came from (for validation errors)."""
    return {
        CORPUS_FILE: str(folder / "corpus.jsonl"),
        QUERIES_FILE: str(folder / "queries.jsonl"),
        QRELS_FILE: ", ".join(str(folder / "qrels" / f"{split}.tsv") for split in query_sets),
    }


def convert_beir_folder(folder: Path, query_sets: list[str], dest: Path) -> dict:
    """Write the canonical corpus/queries/qrels for ``folder`` into ``dest``; return counts."""
    folder = Path(folder)
    for name in ("corpus.jsonl", "queries.jsonl"):
        if not (folder / name).exists():
            raise DataError(folder / name, "file not found (expected a BEIR-layout folder)")
    if not query_sets:
        raise DataError(folder, "no query sets requested (name the qrels splits, e.g. ['test'])")
    qrels = []
    for split in query_sets:
        qrels += [
            {"query_set": split, "query_id": q, "doc_id": d, "relevance": s}
            for q, d, s in read_beir_qrels(folder / "qrels" / f"{split}.tsv")
        ]
    wanted: dict[str, list[str]] = {}
    for row in qrels:
        sets = wanted.setdefault(row["query_id"], [])
        if row["query_set"] not in sets:
            sets.append(row["query_set"])
    queries, seen = [], set()
    qpath = folder / "queries.jsonl"
    for lineno, rec in iter_jsonl(qpath, ("_id", "text")):
        qid = str(rec["_id"])
        for split in wanted.get(qid, []):
            if (split, qid) in seen:
                raise DataError(qpath, f"line {lineno}: duplicate query id {qid!r}")
            seen.add((split, qid))
            queries.append({"query_set": split, "id": qid, "text": _text(rec["text"], qpath, lineno, "text")})
    n_docs = write_corpus(dest / CORPUS_FILE, iter_beir_corpus(folder / "corpus.jsonl"), batch_size=CORPUS_BATCH)
    write_queries(dest / QUERIES_FILE, queries)
    write_qrels(dest / QRELS_FILE, qrels)
    return {"documents_read": n_docs, "queries_read": len(queries), "qrels_read": len(qrels)}


def prepare_beir_local(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    folder = Path(source["path"])
    with staged_collection(out_dir) as stage:
        counts = convert_beir_folder(folder, query_sets, stage)
        return finish_collection(
            stage, {"type": "beir_local", "path": str(folder), **counts}, query_sets, beir_origins(folder, query_sets)
        )


def beir_url(source: dict) -> str:
    if source.get("url"):
        return source["url"]
    base = source.get("base_url") or os.environ.get(BASE_URL_ENV) or BEIR_BASE_URL
    return f"{base.rstrip('/')}/{source['name']}.zip"


def find_beir_root(extracted: Path, name: str) -> Path:
    """The folder holding corpus.jsonl: the zip's top folder (``<name>/``) or the root."""
    candidates = [extracted / name, extracted] + sorted(p for p in extracted.iterdir() if p.is_dir())
    for folder in candidates:
        if (folder / "corpus.jsonl").exists():
            return folder
    raise DataError(extracted, "no corpus.jsonl found in the archive (expected <name>/corpus.jsonl)")


def prepare_beir(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    name = source["name"]
    md5 = source.get("md5") or pinned_checksum("beir", name)
    if not md5:
        raise DataError(
            "resources/checksums/beir.tsv",
            f"no pinned md5 for BEIR dataset {name!r}; add it there or set `md5:` in the collection's source",
        )
    url = beir_url(source)
    archive = Path(work_dir) / "beir" / f"{name}.zip"
    download = fetch(url, archive, md5)
    extracted = Path(work_dir) / "beir" / name
    try:
        safe_extract(archive, extracted)
    except DataError as err:
        archive.unlink(missing_ok=True)  # a bad archive is useless; the next run downloads afresh
        raise DataError(archive, f"{err.problem}; the archive was deleted: rerun to download it again") from err
    try:
        with staged_collection(out_dir) as stage:
            root = find_beir_root(extracted, name)
            counts = convert_beir_folder(root, query_sets, stage)
            provenance = {
                "type": "beir",
                "name": name,
                "url": url,
                "md5": download["md5"],
                "sha256": download["sha256"],
                "bytes": download["bytes"],
                **counts,
            }
            inside = root.relative_to(extracted).as_posix()
            origins = {k: f"{url} > {v}" for k, v in beir_origins(Path(inside), ["|".join(query_sets)]).items()}
            return finish_collection(stage, provenance, query_sets, origins)
    finally:
        shutil.rmtree(extracted, ignore_errors=True)  # the verified zip stays for reruns
