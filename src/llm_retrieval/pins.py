"""Pinned hub revisions: every model and dataset the study reads from the Hugging Face hub.

Configs name revisions the way people write them (``main``, a tag); a branch moves
(the CoIR CodeSearchNet-ccr-go qrels went from 52,561 to 8,122 test rows on ``main``).
``python -m llm_retrieval.pins`` runs where the hub is reachable: it resolves every
revision the config names to a commit hash and writes a lock file
(``config/pins.lock.yaml`` by default, config key ``pins.lock``)::

    models:
      Qwen/Qwen2.5-7B: {main: 09a1b0...}
    datasets:
      CoIR-Retrieval/apps-qrels: {main: 1f3c2d...}

The workflow reads the lock at start-up (:func:`apply_lock`) and replaces each
revision with its hash, so jobs, data manifests, ``backbone.json`` and the report
tables all carry the hashes. A revision written as a 40-hex hash in the config is
pinned already. :func:`unpinned` lists what is neither; with ``pins.strict`` (on in
the paper config) the workflow refuses to run jobs while that list is non-empty
(checked when jobs start, so ``snakemake -n`` keeps working); otherwise it warns.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .atomic import write_text

SHA = re.compile(r"^[0-9a-f]{40}$")
DEFAULT_LOCK = "config/pins.lock.yaml"
KINDS = {"model": "models", "dataset": "datasets"}


class UnpinnedError(RuntimeError):
    """Strict mode: the study reads hub revisions that are not pinned to a commit."""


@dataclass(frozen=True)
class HubRef:
    kind: str  # "model" or "dataset"
    repo: str  # hub repo id
    revision: str  # as the config names it
    where: str  # the config key path that names it (for messages)
    target: tuple = ()  # where apply_lock writes the hash: ("backbones", name) | ("training",) | ("collections", name, key)

    @property
    def pinned(self) -> bool:
        return bool(SHA.match(self.revision))


def _coir_repos(source: dict) -> list[str]:
    from .data.coir import HUB_ROOT, coir_tasks

    root = source.get("hub_root", HUB_ROOT)
    return [f"{root}/{task}-{suffix}" for task in coir_tasks(source).values() for suffix in ("qrels", "queries-corpus")]


def hub_refs(config: dict) -> list[HubRef]:
    """Every hub revision the config reads (local sources and built backbones have none)."""
    refs: list[HubRef] = []
    for name, spec in config.get("backbones", {}).items():
        if "hub_id" in spec:
            refs.append(
                HubRef(
                    "model",
                    spec["hub_id"],
                    spec.get("revision", "main"),
                    f"backbones.{name}.revision",
                    ("backbones", name),
                )
            )
    for name, collection in config.get("collections", {}).items():
        source, where = collection["source"], f"collections.{name}.source"
        if source["type"] == "coir" and source.get("local_root") is None:
            for repo in _coir_repos(source):
                revision = source.get("revisions", {}).get(repo, source.get("revision", "main"))
                refs.append(
                    HubRef("dataset", repo, revision, f"{where}.revisions[{repo}]", ("collections", name, repo))
                )
        elif source["type"] == "mteb_sts" and source.get("local_root") is None:
            from .data.sts import MTEB_ROOT, mteb_revision

            repo = f"{source.get('hub_root', MTEB_ROOT)}/{source['name']}"
            revision = source.get("revisions", {}).get(repo, mteb_revision(source))
            refs.append(HubRef("dataset", repo, revision, f"{where}.revision", ("collections", name, repo)))
        elif source["type"] == "msmarco" and source.get("data_root") is None:
            from .data.msmarco import CORPUS_REPO, QUERIES_REPO

            for role, repo in (
                ("corpus", source.get("corpus_repo", CORPUS_REPO)),
                ("queries", source.get("queries_repo", QUERIES_REPO)),
            ):
                revision = source.get("revisions", {}).get(role, source.get("revision", "main"))
                refs.append(HubRef("dataset", repo, revision, f"{where}.revisions.{role}", ("collections", name, role)))
    sources = [("training.data", ("training",), config.get("training", {}).get("data", {}))]
    sources += [
        (f"training_tasks.{name}.source", ("training_tasks", name), task["source"])
        for name, task in config.get("training_tasks", {}).items()
    ]
    for where, target, data in sources:
        if data.get("type") in ("tevatron", "nli") and data.get("data_root") is None:
            from .data import nli, tevatron

            default = {"tevatron": tevatron.DEFAULT_DATASET, "nli": nli.DEFAULT_DATASET}[data["type"]]
            refs.append(
                HubRef(
                    "dataset", data.get("dataset", default), data.get("revision", "main"), f"{where}.revision", target
                )
            )
    return refs


def read_lock(path: str | Path) -> dict:
    """The lock file's ``{models: {repo: {revision: sha}}, datasets: {...}}``; empty when there is none."""
    path = Path(path)
    if not path.exists():
        return {"models": {}, "datasets": {}}
    lock = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    for section in KINDS.values():
        for repo, revisions in (lock.get(section) or {}).items():
            for revision, sha in (revisions or {}).items():
                if not SHA.match(str(sha)):
                    raise UnpinnedError(
                        f"{path}: {section}.{repo}.{revision}: {sha!r} is not a 40-hex commit hash; "
                        "rerun `python -m llm_retrieval.pins` to rewrite the lock"
                    )
    return {section: lock.get(section) or {} for section in KINDS.values()} | {
        k: v for k, v in lock.items() if k not in KINDS.values()
    }


def pinned_revision(ref: HubRef, lock: dict) -> str | None:
    if ref.pinned:
        return ref.revision
    return (lock.get(KINDS[ref.kind], {}).get(ref.repo) or {}).get(ref.revision)


def apply_lock(config: dict, lock: dict) -> list[HubRef]:
    """Replace every locked revision in ``config`` (in place) by its hash; return the refs still unpinned."""
    missing = []
    for ref in hub_refs(config):
        sha = pinned_revision(ref, lock)
        if sha is None:
            missing.append(ref)
        elif sha != ref.revision:
            _set_revision(config, ref, sha)
    return missing


def _set_revision(config: dict, ref: HubRef, sha: str) -> None:
    if ref.target[0] == "backbones":
        config["backbones"][ref.target[1]]["revision"] = sha
    elif ref.target[0] == "training":
        config["training"]["data"]["revision"] = sha
    elif ref.target[0] == "training_tasks":
        config["training_tasks"][ref.target[1]]["source"]["revision"] = sha
    else:
        source = config["collections"][ref.target[1]]["source"]
        source["revisions"] = {**source.get("revisions", {}), ref.target[2]: sha}


def unpinned(config: dict, lock: dict) -> list[HubRef]:
    return [ref for ref in hub_refs(config) if pinned_revision(ref, lock) is None]


def describe(refs: Iterable[HubRef]) -> str:
    return "\n".join(f"  {ref.kind} {ref.repo}@{ref.revision}  ({ref.where})" for ref in refs)


def check_pins(missing: list[HubRef], strict: bool, lock_path: str, log=None) -> None:
    """Strict: raise listing ``missing``; otherwise warn through ``log`` (a logger or print)."""
    if not missing:
        return
    message = (
        f"{len(missing)} hub revision(s) not pinned to a commit (no entry in {lock_path}):\n"
        f"{describe(missing)}\nRun `python -m llm_retrieval.pins` where the hub is reachable "
        "(or write 40-hex commit hashes in the config)."
    )
    if strict:
        raise UnpinnedError("pins.strict is on; refusing to run jobs. " + message)
    (log.warning if log is not None else print)("warning: " + message)


def pins_used(config: dict) -> list[dict]:
    """``[{kind, repo, revision}]`` as the (lock-applied) config reads them: for manifests and reports."""
    return [
        {"kind": ref.kind, "repo": ref.repo, "revision": ref.revision, "pinned": ref.pinned} for ref in hub_refs(config)
    ]


# --- resolving (online) ---------------------------------------------------------------


def resolve(refs: Iterable[HubRef], api=None) -> dict:
    """Ask the hub for the commit hash of each ref's revision; returns the lock mapping."""
    if api is None:
        from huggingface_hub import HfApi

        api = HfApi()
    from .backbones import HubTokenError, hub_token_present, is_gated

    refs = list(refs)
    gated = sorted({r.repo for r in refs if r.kind == "model" and not r.pinned and is_gated(r.repo)})
    if gated and api_needs_token(api) and not hub_token_present():
        raise HubTokenError(
            f"gated models need a Hugging Face token: {', '.join(gated)}; accept each licence on "
            "huggingface.co, then export HF_TOKEN=hf_... (or `hf auth login`) and rerun "
            "(docs/backbones.md, 'Gated models')"
        )
    lock: dict[str, dict] = {section: {} for section in KINDS.values()}
    for ref in refs:
        if ref.pinned:
            sha = ref.revision
        else:
            try:
                sha = api.repo_info(ref.repo, repo_type=ref.kind, revision=ref.revision).sha
            except Exception as err:
                raise UnpinnedError(
                    f"{ref.where}: could not resolve {ref.kind} {ref.repo}@{ref.revision}: {type(err).__name__}: {err}"
                ) from err
        if not SHA.match(str(sha)):
            raise UnpinnedError(f"{ref.where}: the hub answered {sha!r} for {ref.repo}@{ref.revision}, not a hash")
        lock[KINDS[ref.kind]].setdefault(ref.repo, {})[ref.revision] = sha
    return lock


def api_needs_token(api) -> bool:
    """A real hub client (a test's fake answers without one)."""
    from huggingface_hub import HfApi

    return isinstance(api, HfApi) and not getattr(api, "token", None)


def write_lock(path: str | Path, lock: dict, endpoint: str) -> None:
    header = (
        "# Written by `python -m llm_retrieval.pins`: each hub revision the configs name, resolved to the\n"
        f"# commit it pointed at on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC ({endpoint}).\n"
        "# The workflow reads this file; rerun the command to move the pins.\n"
    )
    write_text(path, header + yaml.safe_dump(lock, sort_keys=True))


def _load_config(paths: list[str]) -> dict:
    config: dict[str, Any] = {}
    for path in paths:
        config.update(yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {})
    return config


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m llm_retrieval.pins", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--configfile",
        nargs="+",
        default=["config/config.yaml"],
        help="config(s) whose hub revisions to resolve (default: the paper config)",
    )
    parser.add_argument("--lock", default=None, help=f"lock file to write (default: pins.lock or {DEFAULT_LOCK})")
    parser.add_argument("--endpoint", default=None, help="hub endpoint (default: HF_ENDPOINT or huggingface.co)")
    parser.add_argument("--check", action="store_true", help="only list unpinned revisions; exit 1 if any")
    args = parser.parse_args(argv)
    config = _load_config(args.configfile)
    lock_path = args.lock or config.get("pins", {}).get("lock", DEFAULT_LOCK)
    existing = read_lock(lock_path)
    if args.check:
        missing = unpinned(config, existing)
        print(describe(missing) if missing else f"every hub revision is pinned ({lock_path})")
        return 1 if missing else 0
    from huggingface_hub import HfApi

    api = HfApi(endpoint=args.endpoint)
    lock = resolve(hub_refs(config), api)
    for section in KINDS.values():  # keep pins of repos other configs name
        for repo, revisions in existing.get(section, {}).items():
            for revision, sha in revisions.items():
                lock[section].setdefault(repo, {}).setdefault(revision, sha)
    write_lock(lock_path, lock, api.endpoint)
    n = sum(len(revs) for section in KINDS.values() for revs in lock[section].values())
    print(f"wrote {lock_path}: {n} pinned revision(s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
