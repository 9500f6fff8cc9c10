"""LongEmbed long-document retrieval (Zhu et al. 2024), e.g. NarrativeQA: the input-length axis's real source.

Hub dataset ``dwzhu/LongEmbed``, one config per task (``narrativeqa``, ``2wikimqa``,
``qmsum``, ``summ_screen_fd``), splits ``corpus`` (``doc_id, text``), ``queries``
(``qid, text``) and ``qrels`` (``qid, doc_id``; every pair relevant, label 1), as
MTEB's ``LEMBNarrativeQARetrieval`` reads them (it pins revision
``6e346642246bfb4928c560ee08640dc84d074e8c``). The whole task is one test set.

Source keys: ``name`` (the config, default ``narrativeqa``), ``revision``, ``hub_id``
(default ``dwzhu/LongEmbed``), ``local_root`` (a folder in the repository's layout,
``<name>/{corpus,queries,qrels}.jsonl``, read through the ``json`` builder: mirrors and
offline tests), ``cache_dir``. NarrativeQA's documents are whole books and scripts
(~50K words on average): the ``passage_tokens`` axis decides how much of each is read.
"""

from __future__ import annotations

from pathlib import Path

from .canonical import CORPUS_FILE, QRELS_FILE, QUERIES_FILE, DataError, write_corpus, write_qrels, write_queries
from .download import SHA, check_columns, iter_rows
from .staging import finish_collection, staged_collection
from .textfiles import require_id

HUB_ID = "dwzhu/LongEmbed"
TASKS = ("narrativeqa", "2wikimqa", "qmsum", "summ_screen_fd")
SPLITS = {"corpus": ("doc_id", "text"), "queries": ("qid", "text"), "qrels": ("qid", "doc_id")}
QUERY_SET = "test"


def _load(source: dict, work_dir: Path) -> tuple[dict, str, str]:
    import datasets

    name = source.get("name", "narrativeqa")
    if name not in TASKS:
        raise DataError("source.name", f"unknown LongEmbed task {name!r} (known: {', '.join(TASKS)})")
    cache_dir = str(source.get("cache_dir", Path(work_dir) / "hf_datasets"))
    if source.get("local_root") is not None:
        folder = Path(source["local_root"]) / name
        files = {split: folder / f"{split}.jsonl" for split in SPLITS}
        missing = [str(f) for f in files.values() if not f.is_file()]
        if missing:
            raise DataError(folder, f"missing {', '.join(missing)} (layout: <local_root>/{name}/<split>.jsonl)")
        # One load per split: the json builder would force the first file's columns on the others.
        data = {
            s: datasets.load_dataset("json", data_files=str(f), split="train", cache_dir=cache_dir)
            for s, f in files.items()
        }
        return data, str(folder), "local"
    hub_id, revision = source.get("hub_id", HUB_ID), source.get("revision", "main")
    try:
        data = datasets.load_dataset(hub_id, name, revision=revision, cache_dir=cache_dir)
    except Exception as err:
        raise DataError(f"{hub_id}[{name}]", f"could not load revision {revision!r} from the hub: {err}") from err
    return data, f"{hub_id}[{name}]", revision


def prepare_longembed(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    if list(query_sets) != [QUERY_SET]:
        raise DataError("query_sets", f"LongEmbed tasks are one test set: use query_sets: {{{QUERY_SET}: {{}}}}")
    data, where, revision = _load(source, work_dir)
    for split, columns in SPLITS.items():
        if split not in data:
            raise DataError(where, f"no split {split!r} (has {', '.join(data)})")
        check_columns(data[split], columns, f"{where}[{split}]")
    qrels = [
        {
            "query_set": QUERY_SET,
            "query_id": require_id(r["qid"], f"{where}[qrels]", i, "qid"),
            "doc_id": require_id(r["doc_id"], f"{where}[qrels]", i, "doc_id"),
            "relevance": 1,
        }
        for i, r in enumerate(iter_rows(data["qrels"], ["qid", "doc_id"]), 1)
    ]
    queries = [
        {"query_set": QUERY_SET, "id": require_id(r["qid"], f"{where}[queries]", i, "qid"), "text": r["text"] or ""}
        for i, r in enumerate(iter_rows(data["queries"], ["qid", "text"]), 1)
    ]
    docs = (
        {"id": require_id(r["doc_id"], f"{where}[corpus]", i, "doc_id"), "title": "", "text": r["text"] or ""}
        for i, r in enumerate(iter_rows(data["corpus"], ["doc_id", "text"], batch_size=256), 1)
    )
    with staged_collection(out_dir) as stage:
        n_docs = write_corpus(stage / CORPUS_FILE, docs, batch_size=256)
        write_queries(stage / QUERIES_FILE, queries)
        write_qrels(stage / QRELS_FILE, qrels)
        notes = (
            []
            if revision == "local" or SHA.match(revision)
            else [f"{where} read at unpinned revision {revision!r}; pin a commit sha in the source for reproducibility"]
        )
        provenance = {
            "type": "longembed",
            "name": source.get("name", "narrativeqa"),
            "dataset": where,
            "revision": revision,
            "documents_read": n_docs,
            "warnings": notes,
        }
        origins = {CORPUS_FILE: f"{where}[corpus]", QUERIES_FILE: f"{where}[queries]", QRELS_FILE: f"{where}[qrels]"}
        return finish_collection(stage, provenance, query_sets, origins)
