"""Writing a collection: a staging folder that becomes the output only when complete, and its manifest.

Every preparer (sources.PREPARERS) writes corpus/queries/qrels into
:func:`staged_collection`'s folder and ends with :func:`finish_collection`, which
validates them (validate.py) and writes ``manifest.json``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

from ..atomic import write_json
from .canonical import MANIFEST_FILE, DataError
from .validate import COLLECTION_FILES, validate_collection

_STAGED: dict[Path, Path] = {}  # staging folder -> the output folder it becomes


def finish_collection(
    out_dir: str | Path, provenance: dict, query_sets: list[str] | None = None, origins: dict[str, str] | None = None
) -> dict:
    """Validate the collection written in ``out_dir`` and write ``manifest.json`` atomically.

    Every preparer ends with this. The manifest holds the provenance (source, URL or
    dataset id, revision, checksum), the counts and the counted validation warnings.
    ``provenance["warnings"]`` (a list of strings), if any, is carried over.

    A validation error names where the data came from, not the scratch folder it was
    converted in: ``origins`` maps a collection file name (``corpus.parquet``...) to its
    source file or dataset; without an entry the error names the final output path.
    """
    out_dir = Path(out_dir)
    try:
        report = validate_collection(out_dir, query_sets)
    except DataError as err:
        name = Path(err.path).name
        origin = (origins or {}).get(name) or str(_STAGED.get(out_dir, out_dir) / name)
        raise DataError(
            origin, f"{err.problem} (found when validating the converted {name}; fix the source and rerun)"
        ) from err
    provenance = dict(provenance)
    notes = provenance.pop("warnings", [])
    manifest = {
        "provenance": provenance,
        "counts": report["counts"],
        "validation": {"warnings": report["warnings"], "notes": list(notes)},
    }
    write_json(out_dir / MANIFEST_FILE, manifest)
    return manifest


@contextlib.contextmanager
def staged_collection(out_dir: str | Path) -> Iterator[Path]:
    """A scratch folder beside ``out_dir``; its collection files move into ``out_dir`` on success.

    Write corpus/queries/qrels into the yielded folder and call :func:`finish_collection`
    on it. If anything raises, ``out_dir`` is left as it was. On success the old
    manifest is removed first and the new one moved last, so a folder with a manifest
    always holds the files that manifest describes.
    """
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    for stale in out_dir.parent.glob(f".{out_dir.name}.staging-*"):  # left by a killed preparation
        shutil.rmtree(stale, ignore_errors=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.staging-", dir=out_dir.parent))
    _STAGED[stage] = out_dir
    try:
        yield stage
        if not (stage / MANIFEST_FILE).exists():
            raise DataError(stage, "staged collection has no manifest.json (call finish_collection)")
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / MANIFEST_FILE).unlink(missing_ok=True)
        for name in (*COLLECTION_FILES, MANIFEST_FILE):
            os.replace(stage / name, out_dir / name)
    finally:
        _STAGED.pop(stage, None)
        shutil.rmtree(stage, ignore_errors=True)
