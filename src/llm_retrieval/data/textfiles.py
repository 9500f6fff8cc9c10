"""Reading text inputs line by line with errors that name the file and the line.

Python's text mode raises a bare ``UnicodeDecodeError`` (no file, no line) on the first
byte that is not UTF-8; :func:`iter_lines` decodes each line itself and turns that into
a :class:`DataError` saying where the bad byte is and what to do. ``.gz`` files are
read through gzip, so the same holds for ``.jsonl.gz``.
"""

from __future__ import annotations

import gzip
import json
import zlib
from collections.abc import Iterator
from pathlib import Path

from .canonical import DataError


def _open(path: str):
    if "://" in path:  # e.g. hf://datasets/<repo>@<rev>/<file>: fsspec streams it
        import fsspec

        return fsspec.open(path, "rb", compression="infer").open()
    return gzip.open(path, "rb") if path.endswith(".gz") else open(path, "rb")


def iter_lines(path: str | Path) -> Iterator[tuple[int, str]]:
    """``(line number, text without the line ending)`` for every line of ``path`` (UTF-8)."""
    path = path if isinstance(path, str) and "://" in path else Path(path)
    lineno = 0
    try:
        with _open(str(path)) as handle:
            for lineno, raw in enumerate(handle, 1):
                try:
                    line = raw.decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(
                        path,
                        f"line {lineno}: byte {raw[err.start : err.start + 1]!r} at column "
                        f"{err.start + 1} is not valid UTF-8; re-encode the file as UTF-8 "
                        "(or fetch it again if it came from a download)",
                    ) from err
                yield lineno, line.rstrip("\r\n")
    except (EOFError, gzip.BadGzipFile, zlib.error) as err:
        raise DataError(
            path, f"line {lineno + 1}: corrupt or truncated gzip data ({err}); fetch the file again"
        ) from err


def iter_json_records(path: str | Path) -> Iterator[tuple[int, dict]]:
    """``(line number, object)`` for each non-blank line of a ``.jsonl`` / ``.jsonl.gz`` file."""
    for lineno, line in iter_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise DataError(path, f"line {lineno}: malformed JSON ({err.msg} at column {err.colno})") from err
        if not isinstance(record, dict):
            raise DataError(path, f"line {lineno}: expected a JSON object, got {type(record).__name__}")
        yield lineno, record


def first_bad_json_line(path: str | Path) -> DataError | None:
    """The named error for the first unreadable line of a JSON-lines file, or None if every line reads
    (or the file cannot be opened at all: the caller's own error then stands)."""
    try:
        for _ in iter_json_records(path):
            pass
    except DataError as err:
        return err
    except Exception:  # noqa: BLE001 - unreachable file: nothing more to say than the caller's error
        return None
    return None


def require_id(value, where: str | Path, row: int, field: str = "_id", unit: str = "row") -> str:
    """``str(value)`` for a record id; a named error for ``null`` / empty ids (``str(None)`` is ``"None"``)."""
    if value is None or value == "" or not isinstance(value, (str, int)):
        raise DataError(
            where,
            f"{unit} {row}: {field!r} is {json.dumps(value, default=repr)}; every record needs a "
            "non-empty string or integer id (fix or drop the record)",
        )
    return str(value)
