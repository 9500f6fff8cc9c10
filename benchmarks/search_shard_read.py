"""Reading an embedding shard: the old fp32 fixed_size_list format vs the fp16 fixed_size_binary one.

    python benchmarks/search_shard_read.py [--rows 40000] [--dim 3584]

Writes the same random unit vectors in both formats, then reads each in a fresh process (so the
peak memory is that read's alone) and prints seconds, MB/s (of float32 vectors delivered, the same
data for both) and the peak resident memory above the process's baseline, with the ratios. The files
were just written, so both reads come from the page cache: this measures decoding, not the disk.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from llm_retrieval.embeddings import read_embeddings, write_embeddings


def old_write(path, ids, vectors):
    dim = vectors.shape[1]
    pq.write_table(
        pa.table(
            {
                "id": pa.array(ids),
                "embedding": pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1), pa.float32()), dim),
            }
        ),
        path,
    )


def old_read(path):
    """The reader before the fp16 format (llm_retrieval.encode.read_embeddings)."""
    table = pq.read_table(path)
    column = table.column("embedding").combine_chunks()
    dim = column.type.list_size
    vectors = column.flatten().to_numpy(zero_copy_only=False).reshape(-1, dim).astype(np.float32, copy=False)
    return table.column("id").to_pylist(), vectors


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def measure(fmt: str, path: str) -> None:
    """Child process: one read, printed as JSON. Peak = high-water RSS above the RSS before the read."""
    Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark (Linux)
    base = _status_kb("VmRSS")
    start = time.perf_counter()
    ids, vectors = old_read(path) if fmt == "old" else read_embeddings(path)
    seconds = time.perf_counter() - start
    peak = _status_kb("VmHWM") - base
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_mb": peak / 1024,
                "rows": len(ids),
                "bytes": vectors.nbytes,
                "checksum": float(vectors[:, :8].astype(np.float64).sum()),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=40_000)
    parser.add_argument("--dim", type=int, default=3584)
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return measure(*args.child)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(args.rows, args.dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    ids = [str(i) for i in range(args.rows)]
    with tempfile.TemporaryDirectory() as tmp:
        old_path, new_path = Path(tmp, "old.parquet"), Path(tmp, "new.parquet")
        old_write(old_path, ids, vectors)
        write_embeddings(new_path, ids, vectors)
        del vectors
        results = {}
        for fmt, path in (("old", old_path), ("new", new_path)):
            out = subprocess.run(
                [sys.executable, __file__, "--child", fmt, str(path)], capture_output=True, text=True, check=True
            )
            results[fmt] = json.loads(out.stdout)
            results[fmt]["file_mb"] = path.stat().st_size / 2**20
    old, new = results["old"], results["new"]
    mb = old["bytes"] / 2**20
    print(f"{args.rows:,} x {args.dim} vectors ({mb:.0f} MB as float32)")
    print(f"{'format':<34}{'file MB':>9}{'seconds':>9}{'MB/s':>9}{'peak MB':>9}")
    for name, r in (("old: fp32 fixed_size_list", old), ("new: fp16 fixed_size_binary", new)):
        print(f"{name:<34}{r['file_mb']:>9.0f}{r['seconds']:>9.2f}{mb / r['seconds']:>9.0f}{r['peak_mb']:>9.0f}")
    print(
        f"read speed-up: {old['seconds'] / new['seconds']:.1f}x; peak memory: {new['peak_mb'] / old['peak_mb']:.2f}x "
        f"of old ({old['peak_mb'] / mb:.2f}x vs {new['peak_mb'] / mb:.2f}x the float32 data); "
        f"same vectors to fp16 precision: {abs(old['checksum'] - new['checksum']) < 1e-2 * old['rows']}"
    )


if __name__ == "__main__":
    main()
