"""Fetching, checksumming and unpacking archives, safely.

- :func:`fetch` downloads to ``<dest>.part`` (resumed with an HTTP Range request when
  a previous attempt left one), checks the byte count the server announced and the
  md5, and only then renames the file to ``dest``. A wrong checksum deletes the
  partial file, so the next attempt starts clean.
- :func:`safe_extract` refuses archive members with absolute paths, ``..`` parts or
  links, and unpacks into a temporary folder renamed into place only when complete.
- :func:`pinned_checksum` reads the md5 tables in ``resources/checksums/``.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import re
import shutil
import urllib.error
import urllib.request
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

from tqdm import tqdm

from ..atomic import atomic_path
from .canonical import DataError
from .textfiles import first_bad_json_line

CHUNK = 1 << 20
# resources/ sits at the repository root: src/llm_retrieval/data/download.py -> parents[3].
RESOURCES = Path(os.environ.get("LLM_RETRIEVAL_RESOURCES", Path(__file__).resolve().parents[3] / "resources"))
CHECKSUMS = RESOURCES / "checksums"
SHA = re.compile(r"^[0-9a-f]{40}$")  # a pinned Hugging Face revision
# The datasets json builder logs "Failed to load JSON from file ... ArrowInvalid" at ERROR before it
# raises; JsonFiles.load turns that exception into a DataError naming the file and line, so the
# builder's own line would only precede the project's error with a vaguer one.
JSON_BUILDER_LOGGER = "datasets.packaged_modules.json.json"


def file_digest(path: Path, algorithm: str) -> str:
    digest = hashlib.new(algorithm)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def pinned_checksum(table: str, name: str) -> str | None:
    """The md5 pinned for ``name`` in ``resources/checksums/<table>.tsv`` (``name<TAB>md5``)."""
    path = CHECKSUMS / f"{table}.tsv"
    if not path.exists():
        return None
    for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        fields = line.split("\t")
        if len(fields) < 2:
            raise DataError(path, f"line {lineno}: expected 'name<TAB>md5', got {line!r}")
        if fields[0] == name:
            return fields[1].strip().lower()
    return None


def fetch(url: str, dest: str | Path, md5: str | None = None, *, progress: bool = True) -> dict:
    """Download ``url`` to ``dest`` (resumable), verify ``md5``; return provenance.

    An existing ``dest`` whose md5 matches is reused without a request.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists() and md5 and file_digest(dest, "md5") == md5:
        return _provenance(url, dest)
    part = dest.with_name(dest.name + ".part")
    _download(url, part, progress)
    actual = file_digest(part, "md5")
    if md5 and actual != md5.lower():
        part.unlink(missing_ok=True)
        raise DataError(
            url,
            f"md5 mismatch: expected {md5}, got {actual} (download deleted; "
            "a changed upstream file needs a new pinned checksum)",
        )
    os.replace(part, dest)
    return _provenance(url, dest)


def _provenance(url: str, path: Path) -> dict:
    return {
        "url": url,
        "file": path.name,
        "bytes": path.stat().st_size,
        "md5": file_digest(path, "md5"),
        "sha256": file_digest(path, "sha256"),
    }


def _download(url: str, part: Path, progress: bool) -> None:
    have = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        response = urllib.request.urlopen(request, timeout=60)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # the part is already complete
            return
        raise DataError(url, f"download failed: HTTP {err.code} {err.reason} (check the URL, or pin a mirror)") from err
    except (urllib.error.URLError, OSError) as err:
        raise DataError(url, f"download failed: {_cause(err)} (check the network or proxy, or use a mirror)") from err
    with response:
        resumed = have and response.status == 206
        if not resumed:
            have = 0  # server ignored the Range header: start over
        length = response.headers.get("Content-Length")
        expected = have + int(length) if length is not None else None
        with (
            open(part, "ab" if resumed else "wb") as out,
            tqdm(
                total=expected, initial=have, unit="B", unit_scale=True, desc=part.name[:-5], disable=not progress
            ) as bar,
        ):
            try:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    bar.update(len(chunk))
            except (OSError, ValueError) as err:  # connection dropped; keep the part to resume
                raise DataError(
                    url, f"download interrupted after {out.tell()} bytes: {_cause(err)} (rerun to resume)"
                ) from err
    got = part.stat().st_size
    if expected is not None and got != expected:
        # Keep the part: a rerun resumes from here.
        raise DataError(url, f"truncated download: got {got} of {expected} bytes (rerun to resume)")


def _cause(err: BaseException) -> str:
    """``Type: message`` of the underlying error (URLError wraps the socket error in ``reason``)."""
    reason = getattr(err, "reason", None)
    inner = reason if isinstance(reason, BaseException) else err
    return f"{type(inner).__name__}: {inner}"


def check_member(name: str, archive: Path) -> PurePosixPath:
    """Reject members that would land outside the extraction folder."""
    path = PurePosixPath(name.replace("\\", "/"))
    if path.is_absolute() or name.startswith(("/", "\\")) or (path.parts and ":" in path.parts[0]):
        raise DataError(archive, f"refusing archive member with an absolute path: {name!r}")
    if ".." in path.parts:
        raise DataError(archive, f"refusing archive member that escapes the folder: {name!r}")
    return path


def safe_extract(archive: str | Path, dest: str | Path) -> Path:
    """Unzip ``archive`` into ``dest`` (replaced atomically); returns ``dest``."""
    archive, dest = Path(archive), Path(dest)
    try:
        with zipfile.ZipFile(archive) as zf:
            members = zf.infolist()
            for info in members:
                check_member(info.filename, archive)
                if (info.external_attr >> 16) & 0o170000 == 0o120000:
                    raise DataError(archive, f"refusing symbolic link in archive: {info.filename!r}")
            with atomic_path(dest, is_dir=True) as tmp:
                for info in tqdm(members, desc=f"extract {archive.name}", unit="file", leave=False):
                    target = tmp.joinpath(*check_member(info.filename, archive).parts)
                    if info.is_dir():
                        target.mkdir(parents=True, exist_ok=True)
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, CHUNK)
    except (zipfile.BadZipFile, EOFError, zipfile.LargeZipFile, zlib.error) as err:
        # zlib.error: the directory is intact but a member's deflate data is not.
        raise DataError(archive, f"corrupt or truncated zip archive: {type(err).__name__}: {err}") from err
    return dest


@contextlib.contextmanager
def _quiet_logger(name: str):
    """Only CRITICAL records from logger ``name`` while inside (its level restored after)."""
    logger = logging.getLogger(name)
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        logger.setLevel(level)


class JsonFiles:
    """Reads ``.jsonl(.gz)`` files of Hugging Face dataset repos with the ``json`` builder."""

    def __init__(self, source: dict, work_dir: Path):
        self.root = source.get("data_root")
        self.revision = source.get("revision", "main")
        self.revisions = source.get("revisions", {})
        self.cache_dir = str(source.get("cache_dir", Path(work_dir) / "hf_datasets"))
        self.used: dict[str, str] = {}

    def location(self, role: str, repo: str, file: str) -> str:
        if self.root:
            path = Path(self.root) / repo / file
            if not path.exists():
                raise DataError(path, "file not found under the local data_root")
            self.used[str(path)] = "local"
            return str(path)
        revision = self.revisions.get(role, self.revision)
        url = f"hf://datasets/{repo}@{revision}/{file}"
        self.used[url] = revision
        return url

    def load(self, role: str, repo: str, file: str):
        import datasets  # heavy import, only when a Hugging Face source is prepared

        where = self.location(role, repo, file)
        try:
            with _quiet_logger(JSON_BUILDER_LOGGER):
                return datasets.load_dataset("json", data_files=where, split="train", cache_dir=self.cache_dir)
        except Exception as err:  # network, missing file, bad JSON: say which file (and line)
            bad = first_bad_json_line(where)  # datasets only says "An error occurred while generating..."
            if bad is not None:
                raise DataError(where, f"{bad.problem}; fix the file or fetch it again") from err
            cause = err.__cause__ or err.__context__
            detail = f"{err}" + (f" (caused by {type(cause).__name__}: {cause})" if cause else "")
            raise DataError(where, f"could not load with the json builder: {detail}") from err

    def pins(self) -> dict[str, str]:
        """``{file url: commit}`` for every file read at a pinned commit (see llm_retrieval.pins)."""
        return {url: rev for url, rev in self.used.items() if SHA.match(rev)}

    def notes(self) -> list[str]:
        return [
            f"{url} read at unpinned revision {rev!r}; pin a commit sha in the source for reproducibility"
            for url, rev in self.used.items()
            if rev != "local" and not SHA.match(rev)
        ]


def check_columns(ds, needed, where: str) -> None:
    """A named error unless the Hugging Face dataset ``ds`` has the ``needed`` columns."""
    missing = [c for c in needed if c not in ds.column_names]
    if missing:
        raise DataError(where, f"missing column(s) {missing}; has {ds.column_names}")


def iter_rows(ds, columns: list[str], batch_size: int = 10_000) -> Iterator[dict]:
    """Rows of ``ds`` as dicts, read a batch at a time (bounded memory on 9M-row datasets)."""
    for batch in ds.select_columns(columns).iter(batch_size=batch_size):
        yield from (dict(zip(batch, values)) for values in zip(*batch.values()))
