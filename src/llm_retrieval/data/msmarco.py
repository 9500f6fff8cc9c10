"""MS MARCO passage: one 8.8M-passage corpus, query sets ``dev``, ``dl19``, ``dl20``.

- corpus: ``Tevatron/msmarco-passage-corpus`` ``corpus.jsonl.gz`` (``docid, title, text``)
- dev: ``Tevatron/msmarco-passage`` ``dev.jsonl.gz`` (6,980 queries); qrels = each
  record's ``positive_passages`` (relevance 1; 7,437 rows)
- dl19 / dl20: queries from ``dl19.jsonl.gz`` / ``dl20.jsonl.gz`` of the same repo, graded
  qrels from the TREC files as Anserini ships them (``qrels.dl19-passage.txt``,
  ``qrels.dl20-passage.txt``: ``qid Q0 docid label``); only judged topics are kept
  (43 / 54).

The Tevatron repos carry a loader script that ``datasets`` 4+ refuses to run, so the
``.jsonl.gz`` files are read with the ``json`` builder straight from
``hf://datasets/<repo>@<revision>/<file>``. ``source.data_root`` replaces that prefix
with a local folder (``<data_root>/<repo>/<file>``) for offline tests and mirrors.

Source keys (all optional): ``corpus_repo``, ``queries_repo``, ``revision`` or
``revisions: {corpus: sha, queries: sha}``, ``files: {corpus, dev, dl19, dl20}``,
``dl_qrels: {dl19: url-or-path, dl20: ...}``, ``dl_qrels_md5: {dl19: md5, ...}``,
``data_root``, ``cache_dir``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from .canonical import CORPUS_FILE, QRELS_FILE, QUERIES_FILE, DataError, write_corpus, write_qrels, write_queries
from .download import JsonFiles, check_columns, fetch, iter_rows, pinned_checksum
from .staging import finish_collection, staged_collection
from .textfiles import iter_lines, require_id

CORPUS_REPO = "Tevatron/msmarco-passage-corpus"
QUERIES_REPO = "Tevatron/msmarco-passage"
FILES = {"corpus": "corpus.jsonl.gz", "dev": "dev.jsonl.gz", "dl19": "dl19.jsonl.gz", "dl20": "dl20.jsonl.gz"}
# The TREC files as Anserini ships them, from a pinned commit: the folder moved from
# topics-and-qrels/ to qrels/ in this commit (content unchanged); md5s in resources/checksums/trec_dl.tsv.
ANSERINI_COMMIT = "43add835e20bd66b48f9a640be9bad95a4762d82"
ANSERINI_QRELS = f"https://raw.githubusercontent.com/castorini/anserini-tools/{ANSERINI_COMMIT}/qrels"
DL_QRELS = {"dl19": f"{ANSERINI_QRELS}/qrels.dl19-passage.txt", "dl20": f"{ANSERINI_QRELS}/qrels.dl20-passage.txt"}
QUERY_SETS = ("dev", "dl19", "dl20")
BATCH = 10_000


def read_trec_qrels(path: Path) -> list[tuple[str, str, int]]:
    """``qid Q0 docid label`` (whitespace-separated) rows."""
    rows = []
    for lineno, line in iter_lines(path):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 4:
            raise DataError(path, f"line {lineno}: expected 'qid Q0 docid label', got {line.strip()!r}")
        try:
            rows.append((fields[0], fields[2], int(fields[3])))
        except ValueError as err:
            raise DataError(path, f"line {lineno}: label {fields[3]!r} is not an integer") from err
    if not rows:
        raise DataError(path, "empty qrels file")
    return rows


def fetch_dl_qrels(source: dict, name: str, work_dir: Path, notes: list[str]) -> tuple[Path, dict]:
    where = source.get("dl_qrels", {}).get(name, DL_QRELS[name])
    if not re.match(r"^https?://", str(where)):
        path = Path(where)
        if not path.exists():
            raise DataError(path, f"{name} qrels file not found")
        return path, {"path": str(path)}
    # The pinned md5s describe the pinned upstream files; another URL (a mirror) names its own md5.
    pinned = pinned_checksum("trec_dl", name) if where == DL_QRELS[name] else None
    md5 = source.get("dl_qrels_md5", {}).get(name) or pinned
    if not md5:
        notes.append(f"{name} qrels {where} have no pinned md5; recorded the sha256 of what was fetched")
    dest = Path(work_dir) / "msmarco" / Path(str(where)).name
    return dest, fetch(str(where), dest, md5, progress=False)


def _dev_queries_and_qrels(ds, where: str, qset: str) -> tuple[list[dict], list[dict]]:
    """MS MARCO dev: Tevatron's rows carry each query's judged passages (relevance 1)."""
    check_columns(ds, ("query_id", "query", "positive_passages"), where)
    queries, qrels = [], []
    for i, row in enumerate(iter_rows(ds, ["query_id", "query", "positive_passages"]), 1):
        qid = require_id(row["query_id"], where, i, "query_id")
        queries.append({"query_set": qset, "id": qid, "text": row["query"]})
        qrels += [
            {"query_set": qset, "query_id": qid, "doc_id": require_id(p["docid"], where, i, "docid"), "relevance": 1}
            for p in row["positive_passages"] or []
        ]
    return queries, qrels


def _qrels_origin(fetched: dict, reader, queries_repo: str, queries_file: str) -> str:
    """Where a query set's judgements came from: the fetched TREC qrels, else the queries file that carries them."""
    return str(fetched.get("url") or fetched.get("path") or reader.location("queries", queries_repo, queries_file))


def prepare_msmarco(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    unknown = [q for q in query_sets if q not in QUERY_SETS]
    if unknown:
        raise DataError("source", f"unknown MS MARCO query set(s) {unknown} (known: {', '.join(QUERY_SETS)})")
    files = {**FILES, **source.get("files", {})}
    corpus_repo, queries_repo = source.get("corpus_repo", CORPUS_REPO), source.get("queries_repo", QUERIES_REPO)
    reader, notes = JsonFiles(source, work_dir), []
    queries, qrels, qrels_provenance = [], [], {}
    for qset in query_sets:
        ds = reader.load("queries", queries_repo, files[qset])
        where = f"{queries_repo}/{files[qset]}"
        if qset == "dev":
            dev_queries, dev_qrels = _dev_queries_and_qrels(ds, where, qset)
            queries, qrels = queries + dev_queries, qrels + dev_qrels
            continue
        check_columns(ds, ("query_id", "query"), where)
        path, qrels_provenance[qset] = fetch_dl_qrels(source, qset, work_dir, notes)
        judged = read_trec_qrels(path)
        topics = {q for q, _, _ in judged}
        qrels += [{"query_set": qset, "query_id": q, "doc_id": d, "relevance": r} for q, d, r in judged]
        kept = [r for r in iter_rows(ds, ["query_id", "query"]) if str(r["query_id"]) in topics]
        queries += [{"query_set": qset, "id": str(r["query_id"]), "text": r["query"]} for r in kept]

    corpus = reader.load("corpus", corpus_repo, files["corpus"])
    check_columns(corpus, ("docid", "text"), f"{corpus_repo}/{files['corpus']}")
    cols = ["docid", "title", "text"] if "title" in corpus.column_names else ["docid", "text"]

    def docs() -> Iterator[dict]:
        where = f"{corpus_repo}/{files['corpus']}"
        rows = tqdm(iter_rows(corpus, cols), total=len(corpus), desc="corpus msmarco", unit="doc")
        for i, row in enumerate(rows, 1):
            yield {
                "id": require_id(row["docid"], where, i, "docid"),
                "title": row.get("title") or "",
                "text": row["text"] or "",
            }

    with staged_collection(out_dir) as stage:
        n_docs = write_corpus(stage / CORPUS_FILE, docs(), batch_size=BATCH)
        write_queries(stage / QUERIES_FILE, queries)
        write_qrels(stage / QRELS_FILE, qrels)
        provenance = {
            "type": "msmarco",
            "datasets": reader.used,
            "pins": reader.pins(),
            "dl_qrels": qrels_provenance,
            "documents_read": n_docs,
            "warnings": notes + reader.notes(),
        }
        origins = {
            CORPUS_FILE: reader.location("corpus", corpus_repo, files["corpus"]),
            QUERIES_FILE: ", ".join(reader.location("queries", queries_repo, files[q]) for q in query_sets),
            QRELS_FILE: ", ".join(
                _qrels_origin(qrels_provenance.get(q, {}), reader, queries_repo, files[q]) for q in query_sets
            ),
        }
        return finish_collection(stage, provenance, query_sets, origins)
