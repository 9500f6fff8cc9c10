"""CoIR code retrieval, from the CoIR benchmark's Hugging Face datasets.

We follow the **coir-eval** layout (the CoIR authors' own evaluation package, the
reference for the paper): for a task ``T``

- ``CoIR-Retrieval/T-queries-corpus``, splits ``corpus`` and ``queries`` (``_id, title, text``),
- ``CoIR-Retrieval/T-qrels``, split ``test`` (``query_id, corpus_id, score``).

As in coir-eval a query set's queries are those its qrels name. Titles are kept in
corpus.parquet; coir-eval encodes the text without the title, which the collection's
``use_title: false`` selects. (MTEB's ``CoIR-Retrieval/T`` layout with configs
corpus/queries/default encodes with the title and scores differ; it is not used.)

CodeSearchNet and CodeSearchNet-CCR are one task per language in coir-eval
(``CodeSearchNet-<lang>``, ``CodeSearchNet-ccr-<lang>``), scored separately and
averaged. ``source.language`` picks one language (faithful to coir-eval); without it
the six are merged into one collection with ids prefixed ``<lang>/``, a single
~1M-document search that is *not* what coir-eval scores (the manifest notes this).

Source keys: ``name`` (below), ``language``, ``revision`` (all repos) or
``revisions: {<repo id>: sha}``, ``hub_root`` (the hub namespace, default
``CoIR-Retrieval``), ``local_root`` (read a local folder holding ``<task>-queries-corpus/``
and ``<task>-qrels/`` dataset folders instead of the hub, through the same
``datasets.load_dataset`` path, for offline tests and mirrors), ``cache_dir`` (default
``<work_dir>/hf_datasets``). Local versus hub is only ever this explicit switch: a folder
in the working directory named like the hub namespace changes nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm

from .canonical import CORPUS_FILE, QRELS_FILE, QUERIES_FILE, DataError, write_corpus, write_qrels, write_queries
from .download import SHA, check_columns, iter_rows
from .staging import finish_collection, staged_collection
from .textfiles import require_id

HUB_ROOT = "CoIR-Retrieval"
LANGUAGES = ("go", "java", "javascript", "ruby", "python", "php")
# Config name -> coir-eval task name(s) (the Hugging Face ids are <hub_root>/<task>-queries-corpus / -qrels).
COIR_TASKS: dict[str, dict[str, str]] = {
    "apps": {"": "apps"},
    "cosqa": {"": "cosqa"},
    "synthetic-text2sql": {"": "synthetic-text2sql"},
    "codesearchnet": {lang: f"CodeSearchNet-{lang}" for lang in LANGUAGES},
    "codetrans-contest": {"": "codetrans-contest"},
    "codetrans-dl": {"": "codetrans-dl"},
    "codesearchnet-ccr": {lang: f"CodeSearchNet-ccr-{lang}" for lang in LANGUAGES},
    "stackoverflow-qa": {"": "stackoverflow-qa"},
    "codefeedback-mt": {"": "codefeedback-mt"},
    "codefeedback-st": {"": "codefeedback-st"},
}
BATCH = 10_000


def coir_tasks(source: dict) -> dict[str, str]:
    """``{id prefix: coir-eval task}`` for the source (prefix '' when ids stay as they are)."""
    name = source.get("name")
    if name not in COIR_TASKS:
        raise DataError("source.name", f"unknown CoIR dataset {name!r} (known: {', '.join(COIR_TASKS)})")
    tasks = COIR_TASKS[name]
    language = source.get("language")
    if language is not None:
        if language not in tasks:
            raise DataError(
                "source.language", f"{name!r} has no language {language!r} (known: {', '.join(t for t in tasks if t)})"
            )
        return {"": tasks[language]}
    if len(tasks) == 1:
        return tasks
    return {f"{lang}/": task for lang, task in tasks.items()}


class HubReader:
    """``datasets.load_dataset`` on ``<hub_root>/<repo>``, with pinned revisions recorded."""

    def __init__(self, source: dict, work_dir: Path):
        self.local = source.get("local_root") is not None
        self.root = str(source["local_root"] if self.local else source.get("hub_root", HUB_ROOT))
        self.revision = source.get("revision", "main")
        self.revisions = source.get("revisions", {})
        self.cache_dir = str(source.get("cache_dir", Path(work_dir) / "hf_datasets"))
        self.used: dict[str, str] = {}

    def load(self, repo: str):
        import datasets  # heavy import, only when a Hugging Face source is prepared

        path = f"{self.root}/{repo}"
        if self.local:
            if not Path(path).is_dir():
                raise DataError(path, "dataset folder not found under the source's local_root")
            self.used[path] = "local"
            return datasets.load_dataset(path, cache_dir=self.cache_dir)
        revision = self.revisions.get(path, self.revision)
        self.used[path] = revision
        try:
            return datasets.load_dataset(path, revision=revision, cache_dir=self.cache_dir)
        except Exception as err:  # network, missing repo or revision: say which dataset
            hint = (
                f" ({self.root!r} is a local folder: set `local_root` to read it instead of the hub)"
                if Path(self.root).is_absolute() and Path(self.root).is_dir()
                else ""
            )
            raise DataError(path, f"could not load revision {revision!r} from the hub: {err}{hint}") from err

    def pins(self) -> dict[str, str]:
        """``{dataset: commit}`` for every dataset read at a pinned commit (see llm_retrieval.pins)."""
        return {repo: rev for repo, rev in self.used.items() if SHA.match(rev)}

    def notes(self) -> list[str]:
        return [
            f"{repo} read at unpinned revision {rev!r}; pin a commit sha in the source for reproducibility"
            for repo, rev in self.used.items()
            if rev != "local" and not SHA.match(rev)
        ]


def _split(dataset_dict, split: str, repo: str):
    if split not in dataset_dict:
        raise DataError(repo, f"no split {split!r} (has {', '.join(dataset_dict)})")
    return dataset_dict[split]


def _task_qrels(qrels_dd, qrels_repo: str, qset: str, prefix: str) -> list[dict]:
    """One task's judgements of one query set, ids prefixed with the task's language."""
    split = _split(qrels_dd, qset, qrels_repo)
    where = f"{qrels_repo}[{qset}]"
    check_columns(split, ("query_id", "corpus_id", "score"), where)
    return [
        {
            "query_set": qset,
            "query_id": prefix + require_id(r["query_id"], where, i, "query_id"),
            "doc_id": prefix + require_id(r["corpus_id"], where, i, "corpus_id"),
            "relevance": int(r["score"]),
        }
        for i, r in enumerate(iter_rows(split, ["query_id", "corpus_id", "score"]), 1)
    ]


def prepare_coir(source: dict, query_sets: list[str], out_dir: Path, work_dir: Path) -> dict:
    tasks = coir_tasks(source)
    hub = HubReader(source, work_dir)
    qrels, queries, corpora = [], [], []
    for prefix, task in tasks.items():
        qrels_repo, qc_repo = f"{task}-qrels", f"{task}-queries-corpus"
        qrels_dd, qc = hub.load(qrels_repo), hub.load(qc_repo)
        task_qrels = [row for qset in query_sets for row in _task_qrels(qrels_dd, qrels_repo, qset, prefix)]
        wanted: dict[str, set] = {}
        for row in task_qrels:
            wanted.setdefault(row["query_id"], set()).add(row["query_set"])
        qsplit = _split(qc, "queries", qc_repo)
        check_columns(qsplit, ("_id", "text"), f"{qc_repo}[queries]")
        for i, row in enumerate(iter_rows(qsplit, ["_id", "text"]), 1):
            qid = prefix + require_id(row["_id"], f"{qc_repo}[queries]", i)
            queries += [{"query_set": s, "id": qid, "text": row["text"] or ""} for s in sorted(wanted.get(qid, ()))]
        csplit = _split(qc, "corpus", qc_repo)
        check_columns(csplit, ("_id", "text"), f"{qc_repo}[corpus]")
        corpora.append((prefix, csplit, task))
        qrels += task_qrels

    def docs() -> Iterator[dict]:
        for prefix, split, task in corpora:
            cols = ["_id", "title", "text"] if "title" in split.column_names else ["_id", "text"]
            rows = tqdm(iter_rows(split, cols), total=len(split), desc=f"corpus {task}", unit="doc")
            for i, row in enumerate(rows, 1):
                yield {
                    "id": prefix + require_id(row["_id"], f"{task}-queries-corpus[corpus]", i),
                    "title": row.get("title") or "",
                    "text": row["text"] or "",
                }

    with staged_collection(out_dir) as stage:
        n_docs = write_corpus(stage / CORPUS_FILE, docs(), batch_size=BATCH)
        write_queries(stage / QUERIES_FILE, queries)
        write_qrels(stage / QRELS_FILE, qrels)
        notes = hub.notes()
        if len(tasks) > 1:
            notes.append(
                f"{len(tasks)} per-language coir-eval tasks merged into one collection (ids prefixed "
                "'<lang>/'); coir-eval scores each language separately and averages"
            )
        provenance = {
            "type": "coir",
            "name": source["name"],
            "layout": "coir-eval",
            "tasks": list(tasks.values()),
            "datasets": hub.used,
            "pins": hub.pins(),
            "documents_read": n_docs,
            "warnings": notes,
        }
        origins = {
            CORPUS_FILE: ", ".join(f"{hub.root}/{t}-queries-corpus[corpus]" for t in tasks.values()),
            QUERIES_FILE: ", ".join(f"{hub.root}/{t}-queries-corpus[queries]" for t in tasks.values()),
            QRELS_FILE: ", ".join(f"{hub.root}/{t}-qrels" for t in tasks.values()),
        }
        return finish_collection(stage, provenance, query_sets, origins)
