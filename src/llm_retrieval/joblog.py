"""Per-job logs: a Snakemake job's stdout, stderr and logging records all go to its log file."""

from __future__ import annotations

import contextlib
import glob
import logging
import os
import re
from collections.abc import Iterator
from pathlib import Path

# Every job logs the GPUs it could use at its start; the cost page reads it back (report.cost.measured).
GPUS_SEEN = "GPUs visible to this job:"


def visible_gpus() -> int:
    """GPUs this process may use, without importing torch: CUDA_VISIBLE_DEVICES where set (Slurm
    sets it for a job holding GPUs), else the node's NVIDIA device files."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None:
        return len([d for d in visible.split(",") if d.strip() and d.strip() != "-1"])
    return len(glob.glob("/dev/nvidia[0-9]*"))


def gpus_seen(path: str | Path) -> int | None:
    """The GPUs a job's log says it saw (its last attempt); None where the log does not say."""
    try:
        text = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    counts = re.findall(re.escape(GPUS_SEEN) + r" (\d+)", text)
    return int(counts[-1]) if counts else None


@contextlib.contextmanager
def job_log(path: str | Path | None) -> Iterator[logging.Logger]:
    """Send everything the job prints to ``path`` (progress bars included); errors end up there too."""
    if not path:
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        yield logging.getLogger("llm_retrieval")
        return
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with (
        open(path, "a", encoding="utf-8", buffering=1) as stream,
        contextlib.redirect_stdout(stream),
        contextlib.redirect_stderr(stream),
    ):
        handler = logging.StreamHandler(stream)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        logging.getLogger("llm_retrieval").info("%s %d", GPUS_SEEN, visible_gpus())
        try:
            yield logging.getLogger("llm_retrieval")
        except BaseException:
            logging.getLogger("llm_retrieval").exception("job failed")
            raise
        finally:
            root.removeHandler(handler)
