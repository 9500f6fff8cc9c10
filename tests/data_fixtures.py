"""Fixture builders for the data tests: BEIR folders and zips, a local HTTP server,
Hugging Face-style dataset folders (CoIR, Tevatron) built in tmp_path. No network."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import threading
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

DOCS = [
    {"_id": "d1", "title": "Alpha", "text": "alpha particles and decay"},
    {"_id": "d2", "title": "", "text": "beta testing of software"},
    {"_id": "d3", "title": "Gamma", "text": "gamma rays from space"},
    {"_id": "d4", "text": "delta of a river"},  # no title: optional in BEIR
]
QUERIES = [
    {"_id": "q1", "text": "what is alpha decay"},
    {"_id": "q2", "text": "software beta"},
    {"_id": "q3", "text": "river delta"},
    {"_id": "q9", "text": "a query no split judges"},
]
QRELS = {"test": [("q1", "d1", 1), ("q2", "d2", 2)], "train": [("q3", "d4", 1)]}


def write_beir_folder(folder: Path, docs=DOCS, queries=QUERIES, qrels=QRELS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.jsonl").write_text("".join(json.dumps(d) + "\n" for d in docs))
    (folder / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in queries))
    (folder / "qrels").mkdir(exist_ok=True)
    for split, rows in qrels.items():
        lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t{s}" for q, d, s in rows]
        (folder / "qrels" / f"{split}.tsv").write_text("\n".join(lines) + "\n")
    return folder


def beir_zip_bytes(name: str, extra_members: dict[str, bytes] | None = None) -> bytes:
    """A zip in the official layout: ``<name>/corpus.jsonl`` etc."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(f"{name}/", b"")
        zf.writestr(f"{name}/corpus.jsonl", "".join(json.dumps(d) + "\n" for d in DOCS))
        zf.writestr(f"{name}/queries.jsonl", "".join(json.dumps(q) + "\n" for q in QUERIES))
        for split, rows in QRELS.items():
            zf.writestr(
                f"{name}/qrels/{split}.tsv",
                "query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{s}\n" for q, d, s in rows),
            )
        for member, data in (extra_members or {}).items():
            zf.writestr(member, data)
    return buf.getvalue()


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


class FileServer:
    """Serves in-memory files on 127.0.0.1 (port 0), with Range support and an
    optional cut-off (announce the full length, send only the first N bytes)."""

    def __init__(self):
        self.files: dict[str, bytes] = {}
        self.cut: dict[str, int] = {}
        self.requests: list[tuple[str, str | None]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                name = self.path.lstrip("/")
                outer.requests.append((name, self.headers.get("Range")))
                if name not in outer.files:
                    self.send_error(404)
                    return
                data, start = outer.files[name], 0
                if self.headers.get("Range"):
                    start = int(self.headers["Range"].split("=")[1].split("-")[0])
                body = data[start:]
                self.send_response(206 if start else 200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                cut = outer.cut.pop(name, None)
                self.wfile.write(body[:cut] if cut is not None else body)
                if cut is not None:
                    self.close_connection = True

            def log_message(self, *args):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def write_parquet_split(folder: Path, split: str, rows: list[dict]) -> None:
    """One split of a Hugging Face dataset repo, in the layout push_to_hub writes."""
    (folder / "data").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.Table.from_pylist(rows), folder / "data" / f"{split}-00000-of-00001.parquet")


def write_coir_task(root: Path, task: str, corpus: list[dict], queries: list[dict], qrels: list[dict]) -> None:
    """``<root>/<task>-queries-corpus`` (splits corpus, queries) and ``<root>/<task>-qrels`` (split test)."""
    write_parquet_split(root / f"{task}-queries-corpus", "corpus", corpus)
    write_parquet_split(root / f"{task}-queries-corpus", "queries", queries)
    write_parquet_split(root / f"{task}-qrels", "test", qrels)


def write_jsonl_gz(path: Path, records: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with gzip.open(path, "wt", encoding="utf-8") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    return path
