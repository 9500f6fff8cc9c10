"""The embedding shard format: one Parquet file per shard, read at disk speed.

Layout (every query and corpus-shard embedding file):

- ``id``: string;
- ``embedding``: ``fixed_size_binary(dim * itemsize)``, each row the vector's raw
  little-endian bytes (float16 by default), so a read is one memcpy per row group
  rather than Arrow's list-of-floats decoding (measured: benchmarks/search_shard_read.py);
- optional extra string columns (the queries file carries ``query_set``);
- schema metadata ``embedding.dim`` and ``embedding.dtype``;
- row groups of about 64 MB, so a reader holds one group beside its output array.

Scores are always computed in float32: readers widen the stored vectors.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from .atomic import atomic_path
from .data.canonical import DataError

DTYPES = ("float16", "float32")
DEFAULT_DTYPE = "float16"
ROW_GROUP_BYTES = 64 * 2**20
DIM_KEY, DTYPE_KEY = b"embedding.dim", b"embedding.dtype"


class EmbeddingFormatError(DataError):
    """An embedding file that is truncated, corrupt or not in this format."""

    def __init__(self, path: str | Path, problem: str):
        problem = " ".join(str(problem).split())  # Arrow's messages span lines
        super().__init__(
            path,
            f"{problem}. It cannot be read: delete it and rerun the workflow; "
            f"only this file (and what depends on it) is recomputed",
        )


class EmbeddingMismatchError(DataError):
    """A corpus shard whose vectors cannot be scored against the queries' vectors."""

    def __init__(self, queries: str | Path, shard: str | Path, problem: str):
        super().__init__(
            shard,
            f"{problem} (queries: {queries}; shard: {shard}). Both must come from the same "
            f"backbone and encoding settings: delete the stale one and rerun",
        )
        self.queries, self.shard = str(queries), str(shard)


class EmbeddingRangeError(ValueError):
    """Vectors that do not fit the storage dtype (float16 overflows above 65504)."""


def embedding_schema(dim: int, dtype: str = DEFAULT_DTYPE, extra: Sequence[str] = ()) -> pa.Schema:
    if dtype not in DTYPES:
        raise ValueError(f"embedding dtype {dtype!r}: expected one of {', '.join(DTYPES)}")
    width = max(1, dim * np.dtype(dtype).itemsize)  # Parquet has no zero-width binary: an empty file has dim 0
    fields = [(name, pa.string()) for name in extra] + [("id", pa.string()), ("embedding", pa.binary(width))]
    return pa.schema(fields, metadata={DIM_KEY: str(dim).encode(), DTYPE_KEY: dtype.encode()})


def rows_per_group(dim: int, dtype: str = DEFAULT_DTYPE) -> int:
    return max(1, ROW_GROUP_BYTES // (dim * np.dtype(dtype).itemsize + 16))


def embedding_table(
    ids: Sequence[str],
    vectors: np.ndarray,
    extra: Mapping[str, Sequence[str]] | None = None,
    dtype: str = DEFAULT_DTYPE,
) -> pa.Table:
    """The on-disk table for ``vectors`` (rows aligned with ``ids``), cast to ``dtype``."""
    extra = dict(extra or {})
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or len(vectors) != len(ids):
        raise ValueError(f"embeddings: {len(ids)} ids but vectors of shape {vectors.shape}")
    dim = vectors.shape[1]
    with np.errstate(over="ignore"):
        stored = np.ascontiguousarray(vectors, dtype=np.dtype(dtype).newbyteorder("<"))
    if not np.isfinite(stored).all():
        bad = int(np.flatnonzero(~np.isfinite(stored).all(axis=1))[0])
        raise EmbeddingRangeError(
            f"embedding of {ids[bad]!r} is not finite as {dtype} (largest |value| in float32: "
            f"{float(np.abs(vectors[bad]).max()):.4g}); set encoding.normalize: true or store float32"
        )
    schema = embedding_schema(dim, dtype, list(extra))
    width = schema.field("embedding").type.byte_width
    data = pa.py_buffer(stored.tobytes() if dim else b"\0" * len(ids))
    column = pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(ids), [None, data])
    arrays = [pa.array(list(values), pa.string()) for values in extra.values()]
    return pa.Table.from_arrays([*arrays, pa.array(list(ids), pa.string()), column], schema=schema)


@contextlib.contextmanager
def embeddings_writer(path: str | Path, schema: pa.Schema) -> Iterator[callable]:
    """Stream tables of ``schema`` into ``path`` in ~64 MB row groups; the file appears only when complete."""
    dim, dtype = _dim_dtype(schema, path)
    group = rows_per_group(dim, dtype)
    with atomic_path(path) as tmp:
        # Vectors do not compress (float bits): stored plain, read without a decompression copy.
        writer = pq.ParquetWriter(
            tmp,
            schema,
            compression={name: "snappy" for name in schema.names} | {"embedding": "none"},
            use_dictionary=[n for n in schema.names if n != "id" and n != "embedding"],
        )
        try:
            yield lambda table: writer.write_table(table.cast(schema), row_group_size=group)
        finally:
            writer.close()


def write_embeddings(
    path: str | Path,
    ids: Sequence[str],
    vectors: np.ndarray,
    extra: Mapping[str, Sequence[str]] | None = None,
    dtype: str = DEFAULT_DTYPE,
) -> None:
    """Write one embedding file atomically (a killed job leaves no file)."""
    table = embedding_table(ids, vectors, extra, dtype)
    with embeddings_writer(path, table.schema) as write:
        write(table)


def merge_embeddings(path: str | Path, parts: Sequence[str | Path]) -> int:
    """Concatenate embedding files (same dim and dtype) into ``path``; returns the row count."""
    if not parts:
        raise ValueError(f"{path}: no parts to merge")
    schema = read_schema(parts[0])
    rows = 0
    with embeddings_writer(path, schema) as write:
        for part in parts:
            if read_schema(part) != schema:
                raise EmbeddingFormatError(part, f"schema differs from {parts[0]}")
            try:
                table = pq.read_table(part)
            except (pa.ArrowException, OSError) as err:
                raise EmbeddingFormatError(part, f"truncated or corrupt ({err})") from None
            write(table)
            rows += table.num_rows
    return rows


def read_schema(path: str | Path) -> pa.Schema:
    try:
        schema = pq.read_schema(path)
    except FileNotFoundError:
        raise
    except (pa.ArrowException, OSError) as err:
        raise EmbeddingFormatError(path, f"not a readable Parquet file ({err})") from None
    _dim_dtype(schema, path)
    return schema


def embedding_info(path: str | Path) -> tuple[int, str, int]:
    """(dim, dtype, rows) from the file footer alone."""
    schema = read_schema(path)
    dim, dtype = _dim_dtype(schema, path)
    try:
        rows = pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as err:
        raise EmbeddingFormatError(path, f"footer unreadable ({err})") from None
    return dim, dtype, rows


def read_embeddings(path: str | Path, dtype=np.float32) -> tuple[list[str], np.ndarray]:
    """(ids, vectors) of one embedding file; vectors widened to ``dtype`` (None: as stored).

    Row group by row group into one preallocated array: peak memory is the output plus one group.
    """
    dim, stored, rows = embedding_info(path)
    out = np.empty((rows, dim), dtype=stored if dtype is None else dtype)
    ids: list[str] = []
    offset = 0
    try:
        reader = pq.ParquetFile(path, memory_map=True)
        for index in range(reader.num_row_groups):
            group = reader.read_row_group(index, columns=["id", "embedding"])
            n = group.num_rows
            out[offset : offset + n] = _vectors(group.column("embedding"), dim, stored, path)
            ids += group.column("id").to_pylist()
            offset += n
    except (pa.ArrowException, OSError) as err:
        raise EmbeddingFormatError(path, f"truncated or corrupt ({err})") from None
    if offset != rows:
        raise EmbeddingFormatError(path, f"footer says {rows} rows, row groups hold {offset}")
    return ids, out


def read_column(path: str | Path, name: str) -> list[str]:
    """An extra column (e.g. ``query_set``) of an embedding file."""
    schema = read_schema(path)
    if name not in schema.names:
        raise EmbeddingFormatError(path, f"no column {name!r} (columns: {', '.join(schema.names)})")
    try:
        return pq.read_table(path, columns=[name]).column(name).to_pylist()
    except (pa.ArrowException, OSError) as err:
        raise EmbeddingFormatError(path, f"truncated or corrupt ({err})") from None


def check_compatible(queries: str | Path, shard: str | Path) -> None:
    """Raise :class:`EmbeddingMismatchError` unless both files hold vectors of one dim and dtype."""
    q_dim, q_dtype, _ = embedding_info(queries)
    s_dim, s_dtype, rows = embedding_info(shard)
    if rows == 0:
        return  # an empty shard scores nothing
    if q_dim != s_dim:
        raise EmbeddingMismatchError(queries, shard, f"embedding dim {s_dim} in the shard, {q_dim} in the queries")
    if q_dtype != s_dtype:
        raise EmbeddingMismatchError(
            queries, shard, f"embedding dtype {s_dtype} in the shard, {q_dtype} in the queries"
        )


def _dim_dtype(schema: pa.Schema, path) -> tuple[int, str]:
    meta = schema.metadata or {}
    if DIM_KEY not in meta or DTYPE_KEY not in meta or "embedding" not in schema.names or "id" not in schema.names:
        raise EmbeddingFormatError(
            path,
            "not an embedding file of this format (expected columns id, embedding and "
            "metadata embedding.dim/embedding.dtype; files from before the fp16 "
            "format lack them)",
        )
    dim, dtype = int(meta[DIM_KEY]), meta[DTYPE_KEY].decode()
    field = schema.field("embedding").type
    if (
        dtype not in DTYPES
        or not pa.types.is_fixed_size_binary(field)
        or field.byte_width != max(1, dim * np.dtype(dtype).itemsize)
    ):
        raise EmbeddingFormatError(path, f"embedding column {field} does not hold dim {dim} {dtype} vectors")
    return dim, dtype


def _vectors(column: pa.ChunkedArray, dim: int, dtype: str, path) -> np.ndarray:
    if column.null_count:
        raise EmbeddingFormatError(path, f"{column.null_count} null embeddings")
    width = dim * np.dtype(dtype).itemsize
    parts = []
    for chunk in column.chunks:
        buf = chunk.buffers()[1]
        parts.append(
            np.frombuffer(
                buf, dtype=np.dtype(dtype).newbyteorder("<"), count=len(chunk) * dim, offset=chunk.offset * width
            ).reshape(len(chunk), dim)
            if len(chunk) and dim
            else np.empty((len(chunk), dim), dtype)
        )
    return parts[0] if len(parts) == 1 else np.concatenate(parts) if parts else np.empty((0, dim), dtype)
