"""Bad input and moved upstreams: each gets a named error that says which file, which
line where there is one, what is wrong and what to do, and nothing corrupt is left
behind to be mistaken for good. (The "faults survived" table in the README lists them.)"""

from __future__ import annotations

import gzip
import io
import json
import socket
import struct
import zipfile
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from data_fixtures import FileServer, beir_zip_bytes, md5, write_beir_folder, write_jsonl_gz

from llm_retrieval.data import msmarco as msmarco_module
from llm_retrieval.data.canonical import (
    CORPUS_SCHEMA,
    QUERIES_SCHEMA,
    CorruptOutputError,
    DataError,
    read_queries,
    read_table,
)
from llm_retrieval.data.download import fetch, pinned_checksum
from llm_retrieval.data.sources import prepare_collection
from llm_retrieval.data.tevatron import prepare_training_groups


@pytest.fixture
def server():
    with FileServer() as srv:
        yield srv


def beir_local(folder: Path) -> dict:
    return {"type": "beir_local", "path": str(folder)}


def insert_line(path: Path, index: int, line: bytes) -> None:
    lines = path.read_bytes().splitlines()
    lines.insert(index, line)
    path.write_bytes(b"\n".join(lines) + b"\n")


# ---------------------------------------------------------------- upstream moves and pins


def test_dl_qrels_come_from_the_pinned_anserini_commit_with_their_md5s_checked(tmp_path, server, monkeypatch):
    for name in ("dl19", "dl20"):
        url = msmarco_module.DL_QRELS[name]
        assert url == (
            "https://raw.githubusercontent.com/castorini/anserini-tools/"
            f"43add835e20bd66b48f9a640be9bad95a4762d82/qrels/qrels.{name}-passage.txt"
        )
    assert pinned_checksum("trec_dl", "dl19") == "2f4be390198da108f6845c822e5ada14"
    assert pinned_checksum("trec_dl", "dl20") == "0355ccee7509ac0463e8278186cdd8d1"
    # The default URL is checked against the pinned md5: a changed file is refused and deleted.
    server.files["qrels.dl19-passage.txt"] = b"19335 Q0 1017759 0\n"
    monkeypatch.setitem(msmarco_module.DL_QRELS, "dl19", f"{server.url}/qrels.dl19-passage.txt")
    with pytest.raises(DataError, match="md5 mismatch: expected 2f4be390198da108f6845c822e5ada14"):
        msmarco_module.fetch_dl_qrels({}, "dl19", tmp_path / "work", [])
    assert list((tmp_path / "work" / "msmarco").iterdir()) == []


def test_beir_checksum_table_has_the_current_md5s_and_no_withdrawn_dataset():
    assert pinned_checksum("beir", "webis-touche2020") == "46f650ba5a527fc69e0a6521c5a23563"
    assert pinned_checksum("beir", "fever") == "5a818580227bfb4b35bb6fa46d9b6c03"
    assert pinned_checksum("beir", "germanquad") is None


# ---------------------------------------------------------------- archives and downloads


def corrupt_first_member_data(data: bytes, member: str) -> bytes:
    """Keep the zip's directory intact but make ``member``'s deflate stream invalid (block type 3)."""
    info = zipfile.ZipFile(io.BytesIO(data)).getinfo(member)
    name_len, extra_len = struct.unpack("<HH", data[info.header_offset + 26 : info.header_offset + 30])
    start = info.header_offset + 30 + name_len + extra_len
    return data[:start] + b"\xff" * 4 + data[start + 4 :]


def test_zip_with_corrupt_deflate_data_is_deleted_with_a_named_error(tmp_path, server):
    data = corrupt_first_member_data(beir_zip_bytes("toy"), "toy/corpus.jsonl")
    server.files["toy.zip"] = data
    source = {"type": "beir", "name": "toy", "base_url": server.url, "md5": md5(data)}
    with pytest.raises(DataError) as err:
        prepare_collection(source, ["test"], tmp_path / "out", tmp_path / "work")
    message = str(err.value)
    assert "toy.zip" in message and "corrupt or truncated zip archive" in message
    assert "deleted: rerun to download it again" in message
    assert not (tmp_path / "work" / "beir" / "toy.zip").exists() and not (tmp_path / "work" / "beir" / "toy").exists()
    assert not (tmp_path / "out").exists()


def test_download_error_keeps_its_cause(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DataError) as err:
        fetch(f"http://127.0.0.1:{port}/x.zip", tmp_path / "x.zip", progress=False)
    assert "ConnectionRefusedError" in str(err.value) and "check the network" in str(err.value)
    assert err.value.__cause__ is not None


# ---------------------------------------------------------------- bad records


def test_null_id_is_an_error_naming_file_and_line_not_the_id_none(tmp_path):
    folder = write_beir_folder(tmp_path / "src")
    insert_line(folder / "corpus.jsonl", 2, b'{"_id": null, "title": "", "text": "orphan"}')
    with pytest.raises(DataError, match=r"corpus\.jsonl: line 3: '_id' is null"):
        prepare_collection(beir_local(folder), ["test"], tmp_path / "out", tmp_path / "work")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "file, index, line, where",
    [
        ("corpus.jsonl", 1, '{"_id": "d8", "text": "caf\xe9"}'.encode("latin-1"), "line 2"),
        ("queries.jsonl", 0, b'{"_id": "q8", "text": "\xff"}', "line 1"),
        ("qrels/test.tsv", 2, b"q2\td\xe93\t1", "line 3"),
    ],
)
def test_non_utf8_byte_names_file_and_line(tmp_path, file, index, line, where):
    folder = write_beir_folder(tmp_path / "src")
    insert_line(folder / file, index, line)
    with pytest.raises(DataError) as err:
        prepare_collection(beir_local(folder), ["test"], tmp_path / "out", tmp_path / "work")
    assert str(folder / file) in str(err.value)
    assert f"{where}: byte" in str(err.value) and "not valid UTF-8" in str(err.value)
    assert not (tmp_path / "out").exists()


def test_validation_error_names_the_source_file_not_the_staging_folder(tmp_path):
    docs = [{"_id": "d1", "text": "a"}, {"_id": "d2", "text": "b"}, {"_id": "d1", "text": "c"}]
    folder = write_beir_folder(tmp_path / "src", docs=docs, qrels={"test": [("q1", "d1", 1)]})
    with pytest.raises(DataError) as err:
        prepare_collection(beir_local(folder), ["test"], tmp_path / "out", tmp_path / "work")
    assert err.value.path == str(folder / "corpus.jsonl")
    assert "duplicate document id(s): 'd1'" in str(err.value) and "staging" not in str(err.value)


def test_malformed_jsonl_gz_line_names_file_and_line(tmp_path):
    root = tmp_path / "mirror"
    path = write_jsonl_gz(
        root / "T/x/train.jsonl.gz",
        [{"query_id": "1", "query": "q", "positive_passages": [], "negative_passages": []}] * 3,
    )
    lines = gzip.decompress(path.read_bytes()).splitlines()
    lines.insert(1, b'{"query_id": "2", "query": ')
    path.write_bytes(gzip.compress(b"\n".join(lines) + b"\n"))
    with pytest.raises(DataError) as err:
        prepare_training_groups({"dataset": "T/x", "data_root": str(root)}, tmp_path / "g.parquet", tmp_path / "w")
    assert str(path) in str(err.value) and "line 2: malformed JSON" in str(err.value)
    assert not (tmp_path / "g.parquet").exists()


def test_null_docid_in_a_hub_dataset_names_the_row(tmp_path):
    root = tmp_path / "mirror"
    write_jsonl_gz(
        root / "Tevatron/msmarco-passage-corpus/corpus.jsonl.gz",
        [{"docid": "1", "title": "", "text": "a"}, {"docid": None, "title": "", "text": "b"}],
    )
    write_jsonl_gz(
        root / "Tevatron/msmarco-passage/dev.jsonl.gz",
        [
            {
                "query_id": "9",
                "query": "q",
                "positive_passages": [{"docid": "1", "title": "", "text": "a"}],
                "negative_passages": [],
            }
        ],
    )
    with pytest.raises(DataError, match=r"corpus\.jsonl\.gz: row 2: 'docid' is null"):
        prepare_collection({"type": "msmarco", "data_root": str(root)}, ["dev"], tmp_path / "out", tmp_path / "w")


def test_coir_reads_the_hub_unless_local_root_is_set_whatever_the_working_directory_holds(tmp_path, monkeypatch):
    import datasets

    (tmp_path / "CoIR-Retrieval" / "apps-qrels").mkdir(parents=True)  # a look-alike folder in the cwd
    monkeypatch.chdir(tmp_path)
    calls = []

    def fake_load(path, **kwargs):
        calls.append((path, kwargs.get("revision")))
        raise ConnectionError("offline")

    monkeypatch.setattr(datasets, "load_dataset", fake_load)
    with pytest.raises(DataError, match="could not load revision 'main' from the hub: offline"):
        prepare_collection({"type": "coir", "name": "apps"}, ["test"], tmp_path / "out", tmp_path / "w")
    assert calls == [("CoIR-Retrieval/apps-qrels", "main")]  # the hub, not the folder
    with pytest.raises(DataError, match="dataset folder not found under the source's local_root"):
        prepare_collection(
            {"type": "coir", "name": "apps", "local_root": str(tmp_path / "elsewhere")},
            ["test"],
            tmp_path / "out",
            tmp_path / "w",
        )


# ---------------------------------------------------------------- corrupt outputs of earlier steps


@pytest.mark.parametrize("damage", ["truncate", "overwrite_middle"])
def test_corrupt_parquet_output_is_a_named_error_saying_how_to_rebuild_only_it(tmp_path, damage):
    from llm_retrieval.bm25 import corpus_ids

    corpus = tmp_path / "corpus.parquet"
    rows = [{"id": f"d{i}", "title": "", "text": "word " * 50} for i in range(200)]
    pq.write_table(pa.Table.from_pylist(rows, schema=CORPUS_SCHEMA), corpus, compression="none")
    queries = tmp_path / "queries.parquet"
    pq.write_table(
        pa.Table.from_pylist([{"query_set": "test", "id": "q", "text": "t"}], schema=QUERIES_SCHEMA), queries
    )
    for path in (corpus, queries):
        data = path.read_bytes()
        path.write_bytes(
            data[: len(data) // 2] if damage == "truncate" else data[:8] + b"\x07" * (len(data) - 16) + data[-8:]
        )
    for read in (
        lambda: corpus_ids(corpus),
        lambda: read_queries(queries, "test"),
        lambda: read_table(corpus, CORPUS_SCHEMA),
    ):
        with pytest.raises(CorruptOutputError) as err:
            read()
        assert "corrupt or truncated Parquet file" in str(err.value)
        assert f"snakemake --force {err.value.path}" in str(err.value)


def test_corrupt_metrics_json_is_a_named_error(tmp_path):
    from llm_retrieval.report.tables import load_metrics

    path = tmp_path / "metrics.json"
    path.write_text(json.dumps({"ndcg_cut_10": 0.5})[:7])
    with pytest.raises(CorruptOutputError, match=r"corrupt or truncated metrics JSON .*snakemake --force"):
        load_metrics(path)
