"""QReCC conversational search (Anantha et al. 2021): a turn's context and question as the query.

As Luo et al. 2024 use it: the query is the conversation so far (``Context``, the earlier questions
and answers in order) followed by the turn's ``Question``, joined by single spaces; it is scored with
nDCG@3. Turns come in apple/ml-qrecc's JSON (a list of ``Context[], Question, Rewrite, Answer,
Answer_URL, Conversation_no, Turn_no, Conversation_source``); a query id is
``<Conversation_no>_<Turn_no>``.

Relevance: ml-qrecc's own turns carry none (its evaluate_retrieval.py judges retrieved passages by
answer-span F1 at run time, which a static qrels file cannot express). The SCAI-QReCC 2021 release
of the same turns adds ``Truth_passages`` (passage ids), read when present; a TREC qrels file per split
(``qrels: {test: path}``, ``qid 0 docid rel``) may be given instead. Turns with no relevant passage
are left out of the query set and counted (they cannot be scored).

Passages: ``passages`` names a JSON-lines file, or a folder of ``*.jsonl`` / ``*.jsonl.gz`` files, of
``{"id", "contents"}`` records (Pyserini's format, in which the SCAI-QReCC collection is distributed).
The full collection is about 54M passages from 10M web pages (a build of hundreds of GB, from Common
Crawl and the Wayback Machine by ml-qrecc's collection/ scripts, or SCAI-QReCC's Zenodo files); a
smaller subset in the same format works the same way. Which collection Luo et al. searched is not
stated in their paper.

Source keys: ``turns: {<split>: path}``, ``passages``, optional ``qrels: {<split>: path}``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from .canonical import CORPUS_FILE, QRELS_FILE, QUERIES_FILE, DataError, write_corpus, write_qrels, write_queries
from .staging import finish_collection, staged_collection
from .textfiles import iter_json_records, iter_lines, require_id

TURN_FIELDS = ("Context", "Question", "Conversation_no", "Turn_no")
CONTEXT_JOIN = " "
# Fetched by hand (sources.BY_HAND): what the files hold and where they come from, for the error and the
# plan-time warning when they are missing.
LOCAL_FILES = (
    "source.turns: one turns JSON per query set (apple/ml-qrecc's qrecc_<split>.json, or SCAI-QReCC's turns); "
    'source.passages: {"id", "contents"} JSON lines (Pyserini\'s format), one file or a folder of '
    "*.jsonl / *.jsonl.gz; source.qrels (optional): a TREC qrels file per query set"
)
GET_FROM = (
    "the turns from the apple/ml-qrecc repository (or the SCAI-QReCC 2021 release on Zenodo); the passages "
    "built by ml-qrecc's collection/ scripts or taken from SCAI-QReCC's Zenodo files"
)


def read_turns(path: Path) -> list[dict]:
    if not path.exists():
        raise DataError(path, "turns file not found (apple/ml-qrecc's qrecc_<split>.json or SCAI-QReCC turns)")
    try:
        turns = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DataError(path, f"not a JSON list of turns ({err})") from err
    if not isinstance(turns, list):
        raise DataError(path, f"expected a JSON list of turns, got {type(turns).__name__}")
    for i, turn in enumerate(turns, 1):
        missing = [f for f in TURN_FIELDS if not isinstance(turn, dict) or f not in turn]
        if missing:
            raise DataError(path, f"turn {i}: missing field(s) {missing}")
        if not isinstance(turn["Context"], list):
            raise DataError(path, f"turn {i}: Context must be a list of strings")
    return turns


def turn_query(turn: dict) -> str:
    """The query Luo et al. build: the context turns, then the question."""
    return CONTEXT_JOIN.join([*(str(c) for c in turn["Context"]), str(turn["Question"])]).strip()


def turn_id(turn: dict) -> str:
    return f"{turn['Conversation_no']}_{turn['Turn_no']}"


def _trec_qrels(path: Path, split: str) -> list[dict]:
    rows = []
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        fields = line.split()
        if len(fields) != 4 or not fields[3].lstrip("-").isdigit():
            raise DataError(path, f"line {lineno}: expected 'qid 0 docid relevance', got {line[:80]!r}")
        rows.append({"query_set": split, "query_id": fields[0], "doc_id": fields[2], "relevance": int(fields[3])})
    return rows


def read_split(source: dict, split: str) -> tuple[list[dict], list[dict], int]:
    """(queries, qrels, turns left out for want of a relevant passage) of one split."""
    turns_path = Path(source.get("turns", {}).get(split, ""))
    if not source.get("turns", {}).get(split):
        raise DataError(f"source.turns.{split}", "no turns file for this query set")
    turns = read_turns(turns_path)
    if source.get("qrels", {}).get(split):
        qrels = _trec_qrels(Path(source["qrels"][split]), split)
    else:
        qrels = [
            {"query_set": split, "query_id": turn_id(t), "doc_id": str(p), "relevance": 1}
            for t in turns
            for p in t.get("Truth_passages") or []
        ]
    judged = {r["query_id"] for r in qrels}
    queries = [{"query_set": split, "id": turn_id(t), "text": turn_query(t)} for t in turns if turn_id(t) in judged]
    return queries, qrels, len(turns) - len(queries)


def passage_files(passages: Path) -> list[Path]:
    if passages.is_dir():
        files = sorted([*passages.glob("*.jsonl"), *passages.glob("*.jsonl.gz")])
        if not files:
            raise DataError(passages, "no *.jsonl or *.jsonl.gz passage files in this folder")
        return files
    if not passages.exists():
        raise DataError(passages, "passages file not found")
    return [passages]


def iter_passages(passages: Path) -> Iterator[dict]:
    for path in passage_files(passages):
        for lineno, record in iter_json_records(path):
            if "id" not in record or "contents" not in record:
                raise DataError(path, f"line {lineno}: a passage needs 'id' and 'contents'")
            yield {
                "id": require_id(record["id"], path, lineno, "id", "line"),
                "title": "",
                "text": record["contents"] or "",
            }


def prepare_qrecc(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    queries, qrels, unjudged = [], [], {}
    for split in query_sets:
        split_queries, split_qrels, unjudged[split] = read_split(source, split)
        queries += split_queries
        qrels += split_qrels
    passages = Path(source["passages"])
    notes = [f"{n} {split} turns without a relevant passage left out" for split, n in unjudged.items() if n]
    with staged_collection(out_dir) as stage:
        n_docs = write_corpus(stage / CORPUS_FILE, iter_passages(passages))
        write_queries(stage / QUERIES_FILE, queries)
        write_qrels(stage / QRELS_FILE, qrels)
        provenance = {
            "type": "qrecc",
            "turns": source["turns"],
            "passages": str(passages),
            "documents_read": n_docs,
            "queries_read": len(queries),
            "qrels_read": len(qrels),
            "warnings": notes,
        }
        origins = {
            CORPUS_FILE: str(passages),
            QUERIES_FILE: str(source["turns"]),
            QRELS_FILE: str(source.get("qrels") or source["turns"]),
        }
        return finish_collection(stage, provenance, query_sets, origins)
