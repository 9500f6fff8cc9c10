"""Atomic file output: a killed job never leaves a half file that looks complete.

Every writer in the package goes through :func:`atomic_path`: the data is written
to a temporary name in the destination folder and renamed into place only once it
is complete (``os.replace`` is atomic on POSIX within one file system).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


class DiskFullError(OSError):
    """The disk (or a quota, or the file size limit) filled up while an output was written."""


_FULL_ERRNOS = {errno.ENOSPC, errno.EFBIG, errno.EDQUOT}
_FULL_TEXTS = ("No space left on device", "File too large", "Disk quota exceeded")


def _is_disk_full(exc: BaseException) -> bool:
    # pyarrow's writers raise OSError without errno; their message carries the C library's text.
    return isinstance(exc, OSError) and (exc.errno in _FULL_ERRNOS or any(t in str(exc) for t in _FULL_TEXTS))


def remove_stale_temporaries(final: Path) -> None:
    """Remove ``.<name>.tmp-*`` left beside ``final`` by a writer that was killed (SIGKILL skips cleanup).

    Only one job writes a given output, so any such leftover belongs to a dead attempt.
    """
    for stale in final.parent.glob(f".{final.name}.tmp-*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, *, is_dir: bool = False) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it to ``path`` on success.

    On any exception the temporary file (or folder) is removed and ``path`` is untouched;
    a full disk becomes a :class:`DiskFullError` naming ``path``.
    """
    final = Path(path)
    final.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(final)
    prefix = f".{final.name}.tmp-"
    if is_dir:
        tmp = Path(tempfile.mkdtemp(prefix=prefix, dir=final.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=prefix, dir=final.parent)
        os.close(fd)
        tmp = Path(name)
    try:
        yield tmp
        if is_dir and final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException as exc:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
        if _is_disk_full(exc):
            raise DiskFullError(
                getattr(exc, "errno", None) or errno.ENOSPC,
                f"{final}: the disk filled up (or a quota / file size limit was hit) while writing it "
                f"({exc}); the partial file was removed and nothing was written. Free space on "
                f"{final.parent.resolve()} (df -h) and rerun the same command.",
            ) from exc
        raise


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def write_parquet(path: str | os.PathLike, table: pa.Table) -> None:
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


@contextlib.contextmanager
def parquet_writer(path: str | os.PathLike, schema: pa.Schema) -> Iterator[pq.ParquetWriter]:
    """Stream record batches into a Parquet file that appears only when complete."""
    with atomic_path(path) as tmp:
        writer = pq.ParquetWriter(tmp, schema)
        try:
            yield writer
        finally:
            writer.close()
