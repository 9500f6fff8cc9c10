"""The embedding shard format: fp16 bytes in Parquet, schema-checked, named errors for bad files."""

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from llm_retrieval.embeddings import (
    EmbeddingFormatError,
    EmbeddingMismatchError,
    EmbeddingRangeError,
    check_compatible,
    embedding_info,
    merge_embeddings,
    read_column,
    read_embeddings,
    rows_per_group,
    write_embeddings,
)


def _vectors(n, dim, seed=0):
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_fp16_shard_round_trips_ids_and_vectors_within_fp16_precision(tmp_path):
    vectors = _vectors(50, 24)
    ids = [f"doc-{i}" for i in range(50)]
    write_embeddings(tmp_path / "s.parquet", ids, vectors, {"query_set": ["a"] * 25 + ["b"] * 25})
    read_ids, read = read_embeddings(tmp_path / "s.parquet")
    assert read_ids == ids and read.dtype == np.float32
    np.testing.assert_array_equal(read, vectors.astype(np.float16).astype(np.float32))
    assert read_column(tmp_path / "s.parquet", "query_set")[24:26] == ["a", "b"]
    schema = pq.read_schema(tmp_path / "s.parquet")
    assert schema.field("embedding").type == pa.binary(24 * 2)
    assert embedding_info(tmp_path / "s.parquet") == (24, "float16", 50)
    assert read_embeddings(tmp_path / "s.parquet", dtype=None)[1].dtype == np.float16


def test_row_groups_are_about_64_mb(tmp_path, monkeypatch):
    import llm_retrieval.embeddings as emb

    assert 60 * 2**20 < rows_per_group(3584) * 3584 * 2 <= 64 * 2**20  # a 7B backbone's hidden size
    monkeypatch.setattr(emb, "ROW_GROUP_BYTES", 16 * 100)  # 100 rows of dim 8 fp16 (+ id allowance)
    write_embeddings(tmp_path / "s.parquet", [str(i) for i in range(250)], _vectors(250, 8))
    meta = pq.ParquetFile(tmp_path / "s.parquet").metadata
    assert meta.num_row_groups > 1
    ids, read = read_embeddings(tmp_path / "s.parquet")  # read group by group into one array
    assert ids == [str(i) for i in range(250)]
    np.testing.assert_array_equal(read, _vectors(250, 8).astype(np.float16).astype(np.float32))


def test_merged_parts_equal_one_write(tmp_path):
    vectors, ids = _vectors(30, 8), [f"d{i}" for i in range(30)]
    parts = []
    for k, rows in enumerate(np.array_split(np.arange(30), 3)):
        parts.append(tmp_path / f"part-{k}.parquet")
        write_embeddings(parts[-1], [ids[i] for i in rows], vectors[rows])
    assert merge_embeddings(tmp_path / "merged.parquet", parts) == 30
    merged_ids, merged = read_embeddings(tmp_path / "merged.parquet")
    assert merged_ids == ids
    np.testing.assert_array_equal(merged, vectors.astype(np.float16).astype(np.float32))


def test_truncated_shard_is_a_named_error_saying_delete_and_rerun(tmp_path):
    path = tmp_path / "shard-3.parquet"
    write_embeddings(path, [f"d{i}" for i in range(100)], _vectors(100, 16))
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(EmbeddingFormatError, match=r"shard-3\.parquet.*delete it and rerun"):
        read_embeddings(path)


def test_corrupt_row_group_is_a_named_error(tmp_path):
    path = tmp_path / "shard-0.parquet"
    write_embeddings(path, [f"d{i}" for i in range(100)], _vectors(100, 16))
    data = bytearray(path.read_bytes())
    data[8:400] = b"\xff" * 392  # inside the first column chunk, footer intact
    path.write_bytes(bytes(data))
    with pytest.raises(EmbeddingFormatError, match=r"shard-0\.parquet.*only this file"):
        read_embeddings(path)


def test_old_fp32_list_format_is_a_named_error(tmp_path):
    path = tmp_path / "old.parquet"
    vectors = _vectors(4, 8)
    pq.write_table(
        pa.table(
            {
                "id": ["a", "b", "c", "d"],
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), 8),
            }
        ),
        path,
    )
    with pytest.raises(EmbeddingFormatError, match="old.parquet.*not an embedding file of this format"):
        read_embeddings(path)


@pytest.mark.parametrize(
    "shard_dim, shard_dtype, message",
    [
        (12, "float16", "embedding dim 12 in the shard, 16 in the queries"),
        (16, "float32", "embedding dtype float32 in the shard, float16 in the queries"),
    ],
)
def test_shard_query_mismatch_names_both_files(tmp_path, shard_dim, shard_dtype, message):
    write_embeddings(tmp_path / "queries.parquet", ["q"], _vectors(1, 16))
    write_embeddings(tmp_path / "shard-0.parquet", ["d"], _vectors(1, shard_dim), dtype=shard_dtype)
    with pytest.raises(EmbeddingMismatchError, match=message) as err:
        check_compatible(tmp_path / "queries.parquet", tmp_path / "shard-0.parquet")
    assert "queries.parquet" in str(err.value) and "shard-0.parquet" in str(err.value)


def test_vector_beyond_fp16_range_is_refused_not_stored_as_inf(tmp_path):
    vectors = _vectors(3, 4)
    vectors[1, 2] = 1e5
    with pytest.raises(EmbeddingRangeError, match="'b'.*encoding.normalize"):
        write_embeddings(tmp_path / "s.parquet", ["a", "b", "c"], vectors)
    assert not (tmp_path / "s.parquet").exists()


def test_empty_shard_reads_as_zero_rows(tmp_path):
    write_embeddings(tmp_path / "s.parquet", [], np.empty((0, 0), np.float32))
    ids, vectors = read_embeddings(tmp_path / "s.parquet")
    assert ids == [] and vectors.shape[0] == 0
