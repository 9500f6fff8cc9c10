"""Offline demo data, built from what is on this machine.

- a real code-search dataset from the running interpreter's standard library: every
  function or method with a docstring of at least 4 words becomes a pair (query = the
  docstring's first sentence, document = the function's source without its docstring),
  split deterministically into train / test, usable in both CoIR directions, a third task,
  function name → function (the name's words as the query: a lexical task unlike the other two),
  and a fourth with long documents, docstring sentence → the whole module the function is in;
- a small generated text-retrieval dataset, written in BEIR layout and read back
  through the same BEIR reader as the real BEIR sets.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import sysconfig
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa

from ..atomic import atomic_path, write_parquet
from .canonical import (
    CORPUS_FILE,
    QRELS_FILE,
    QUERIES_FILE,
    DataError,
    read_table,
    write_corpus,
    write_qrels,
    write_queries,
)
from .staging import finish_collection, staged_collection

PAIRS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("module", pa.string()),
        ("qualname", pa.string()),
        ("docstring", pa.string()),
        ("query", pa.string()),
        ("code", pa.string()),
        ("split", pa.string()),
    ]
)
SKIPPED_PACKAGES = {"site-packages", "test", "idlelib", "lib2to3", "tests"}  # test suites, not library code
MIN_DOC_WORDS = 4
# Source types (of collections and of training tasks) read from the pairs file build_stdlib_codesearch writes:
# the workflow gives it to their jobs as the input ``pairs``.
PAIRS_SOURCE_TYPES = ("stdlib_codesearch", "stdlib_sts", "stdlib_nli")
DIRECTIONS = ("text-to-code", "code-to-text", "name-to-code", "text-to-module")


def first_sentence(docstring: str) -> str:
    paragraph = re.split(r"\n\s*\n", docstring.strip(), maxsplit=1)[0]
    paragraph = " ".join(paragraph.split())
    match = re.match(r"(.+?[.!?])(\s|$)", paragraph)
    return match.group(1) if match else paragraph


def name_words(qualname: str) -> str:
    """A function's qualified name as words: ``Cls.parse_args`` -> ``cls parse args``."""
    parts = [p for p in qualname.replace("<locals>", "").split(".") if p]
    return " ".join(w for p in parts for w in re.sub(r"([a-z])([A-Z])", r"\1 \2", p).replace("_", " ").lower().split())


def split_of(pair_id: str, test_percent: int = 20) -> str:
    """Deterministic across machines and Python versions (unlike hash())."""
    return "test" if int(hashlib.md5(pair_id.encode()).hexdigest(), 16) % 100 < test_percent else "train"


def _functions(tree: ast.AST, prefix: str = "") -> Iterator[tuple[str, ast.AST]]:
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            yield f"{prefix}{node.name}", node
            yield from _functions(node, f"{prefix}{node.name}.<locals>.")
        elif isinstance(node, ast.ClassDef):
            yield from _functions(node, f"{prefix}{node.name}.")
        else:
            yield from _functions(node, prefix)


def code_without_docstring(source_lines: list[str], node: ast.AST) -> str:
    doc = node.body[0]
    start = (node.decorator_list[0].lineno if node.decorator_list else node.lineno) - 1
    kept = source_lines[start : doc.lineno - 1] + source_lines[doc.end_lineno : node.end_lineno]
    return textwrap.dedent("".join(kept)).strip("\n")


def stdlib_pairs(root: str | Path | None = None) -> Iterator[dict]:
    root = Path(root or sysconfig.get_paths()["stdlib"])
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root)
        if SKIPPED_PACKAGES & set(rel.parts):
            continue
        try:
            source = path.read_text(encoding="utf-8")
            tree = ast.parse(source)
        except (SyntaxError, UnicodeDecodeError, ValueError):
            continue  # a handful of stdlib files are deliberately not valid Python 3
        module = ".".join(rel.with_suffix("").parts)
        lines = source.splitlines(keepends=True)
        for qualname, node in _functions(tree):
            docstring = ast.get_docstring(node)
            if not docstring or len(docstring.split()) < MIN_DOC_WORDS or len(node.body) < 2:
                continue  # no docstring to query with, or no code left to find
            pair_id = f"{module}:{qualname}:{node.lineno}"
            yield {
                "id": pair_id,
                "module": module,
                "qualname": qualname,
                "docstring": docstring,
                "query": first_sentence(docstring),
                "code": code_without_docstring(lines, node),
                "split": split_of(pair_id),
            }


def build_stdlib_pairs(out_path: str | Path) -> dict:
    rows = list(stdlib_pairs())
    write_parquet(out_path, pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA))
    splits = {s: sum(1 for r in rows if r["split"] == s) for s in ("train", "test")}
    return {"pairs": len(rows), **splits, "stdlib": sysconfig.get_paths()["stdlib"]}


def _pair_task(pairs: list[dict], direction: str, limit: int | None) -> tuple[list, list]:
    """One document per pair; each pair's query finds its own document. Returns the documents and the
    judged queries as (split, query id, query text, relevant doc id)."""
    if limit:  # a deterministic subset, for quick test studies
        pairs = sorted(pairs, key=lambda p: _md5(p["id"]))[:limit]
    query_field, doc_field = {
        "text-to-code": ("query", "code"),
        "code-to-text": ("code", "query"),
        "name-to-code": ("name", "code"),
    }[direction]
    pairs = [{**p, "name": name_words(p["qualname"])} for p in pairs]
    docs = [{"id": f"d-{p['id']}", "title": "", "text": p[doc_field]} for p in pairs]
    return docs, [(p["split"], f"q-{p['id']}", p[query_field], f"d-{p['id']}") for p in pairs]


def _line_of(pair_id: str) -> int:
    return int(pair_id.rsplit(":", 1)[1])


def _module_task(pairs: list[dict], limit: int | None) -> tuple[list, list]:
    """One document per module (its functions' code in source order, docstrings left out: long documents);
    a function's docstring sentence finds its module. ``limit`` counts modules."""
    modules: dict[str, list[dict]] = {}
    for p in pairs:
        modules.setdefault(p["module"], []).append(p)
    chosen = sorted(modules, key=_md5)[:limit] if limit else sorted(modules)
    docs, judged = [], []
    for module in chosen:
        functions = sorted(modules[module], key=lambda p: _line_of(p["id"]))
        docs.append({"id": f"m-{module}", "title": "", "text": "\n\n".join(p["code"] for p in functions)})
        judged += [(p["split"], f"q-{p['id']}", p["query"], f"m-{module}") for p in functions]
    return docs, judged


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def prepare_stdlib_codesearch(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    """Text-to-code: docstring sentence → function; code-to-text: function → sentence (CoIR's two directions);
    name-to-code: the function's name as words → the function without its name line's docstring;
    text-to-module: docstring sentence → the whole module it is in (long documents: the input-length axis)."""
    direction = source.get("direction")
    if direction not in DIRECTIONS:
        raise DataError(out_dir, f"source.direction must be one of {DIRECTIONS}, got {direction!r}")
    pairs = read_table(source["pairs"], PAIRS_SCHEMA).to_pylist()
    if direction == "text-to-module":
        docs, judged = _module_task(pairs, source.get("limit"))
    else:
        docs, judged = _pair_task(pairs, direction, source.get("limit"))
    chosen = [j for j in judged if j[0] in query_sets]
    with staged_collection(out_dir) as stage:
        write_corpus(stage / CORPUS_FILE, iter(docs))
        write_queries(stage / QUERIES_FILE, ({"query_set": s, "id": q, "text": t} for s, q, t, _ in chosen))
        write_qrels(
            stage / QRELS_FILE,
            ({"query_set": s, "query_id": q, "doc_id": d, "relevance": 1} for s, q, _, d in chosen),
        )
        return finish_collection(
            stage, {"type": "stdlib_codesearch", "direction": direction, "pairs_file": str(source["pairs"])}, query_sets
        )


# --- generated text retrieval, BEIR layout ---------------------------------------------


def _vocabulary(rng: random.Random, size: int) -> list[str]:
    syllables = ["ka", "lo", "mi", "ra", "te", "su", "no", "ve", "di", "pa", "zo", "fi", "gu", "he", "ju", "bre"]
    words = set()
    while len(words) < size:
        words.add("".join(rng.choice(syllables) for _ in range(rng.randint(2, 4))))
    return sorted(words)


def build_synthetic_beir(
    out_dir: str | Path, num_topics: int = 60, docs_per_topic: int = 20, queries_per_topic: int = 3, seed: int = 13
) -> dict:
    """A topical corpus: each topic has its own words; a query takes words of one document
    in its topic, which is graded 2, the topic's other documents that share a query word 1.
    A few documents reuse a query's id, to exercise BEIR's self-hit rule."""
    rng = random.Random(seed)
    vocab = _vocabulary(rng, num_topics * 12 + 200)
    common, topic_words = vocab[:200], [vocab[200 + 12 * t : 212 + 12 * t] for t in range(num_topics)]
    corpus, queries, qrels = [], [], []
    for topic in range(num_topics):
        docs = []
        for d in range(docs_per_topic):
            words = rng.sample(topic_words[topic], 5) + rng.sample(common, 25)
            rng.shuffle(words)
            docs.append({"_id": f"t{topic}-d{d}", "title": " ".join(words[:3]), "text": " ".join(words[3:])})
        for q in range(queries_per_topic):
            target = docs[rng.randrange(len(docs))]
            target_words = set((target["title"] + " " + target["text"]).split()) & set(topic_words[topic])
            terms = rng.sample(sorted(target_words), 3)
            qid = f"t{topic}-q{q}"
            queries.append({"_id": qid, "text": " ".join(terms + rng.sample(common, 2))})
            for doc in docs:
                shared = set(terms) & set((doc["title"] + " " + doc["text"]).split())
                if doc is target:
                    qrels.append((qid, doc["_id"], 2))
                elif len(shared) >= 2:
                    qrels.append((qid, doc["_id"], 1))
            if q == 0 and topic % 10 == 0:
                corpus.append({"_id": qid, "title": "", "text": queries[-1]["text"]})  # the self-hit
        corpus.extend(docs)
    out_dir = Path(out_dir)
    with atomic_path(out_dir, is_dir=True) as tmp:
        for name, rows in (("corpus.jsonl", corpus), ("queries.jsonl", queries)):
            (tmp / name).write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
        (tmp / "qrels").mkdir()
        (tmp / "qrels" / "test.tsv").write_text(
            "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in qrels), encoding="utf-8"
        )
    return {"documents": len(corpus), "queries": len(queries), "qrels": len(qrels)}
