"""Model shapes and sizes: what a backbone's parameter count says about the jobs it needs.

Offline the shapes come from ``resources/reference/backbone_configs.json`` (published
config.json values); once a model is downloaded, from its resolved ``config.json``.
"""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "resources" / "reference" / "backbone_configs.json"
INSTRUCT_SUFFIX = "-Instruct"


@lru_cache(maxsize=1)
def _reference() -> dict:
    if not REFERENCE.is_file():
        return {}
    return json.loads(REFERENCE.read_text(encoding="utf-8"))["models"]


def known_shape(hub_id: str) -> dict | None:
    """Published shape of a hub model; an -Instruct variant shares its base's shape."""
    models = _reference()
    if hub_id in models:
        return models[hub_id]
    if hub_id.endswith(INSTRUCT_SUFFIX) and hub_id[: -len(INSTRUCT_SUFFIX)] in models:
        return models[hub_id[: -len(INSTRUCT_SUFFIX)]]
    return None
