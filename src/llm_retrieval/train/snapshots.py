"""Adapters exported along the way (the learning curve): ``settings.supervised.axes.steps``.

Each requested step's adapter is saved, when training passes that step, under the
checkpoint folder (``<checkpoints>/adapters/step-N``), which survives a failed job and
is not pruned; at the end every one is copied to its declared output. A run resumed
from a checkpoint therefore still has the snapshots of the steps it did before.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from ..atomic import atomic_path


def kept_path(checkpoint_dir: str | Path, step: int) -> Path:
    return Path(checkpoint_dir) / "adapters" / f"step-{step:08d}"


def check_steps(snapshots: dict[int, str], total_steps: int) -> None:
    over = sorted(s for s in snapshots if s > total_steps)
    if over:
        raise ValueError(
            f"settings.supervised.axes.steps: {over} exceed the run's {total_steps} optimizer steps "
            "(set training.max_steps or lower the steps)"
        )


def maybe_save(engine, job, step: int, rank: int) -> None:
    """Collective: every rank calls it after optimizer step ``step`` (0 = before the first)."""
    if step not in job.snapshots or kept_path(job.checkpoint_dir, step).is_dir():
        return
    import deepspeed

    from .adapter import save_adapter

    save_adapter(engine, str(kept_path(job.checkpoint_dir, step)), rank, deepspeed)


def export(job) -> None:
    """Rank 0: copy each kept snapshot to its declared output folder."""
    for step, out in sorted(job.snapshots.items()):
        kept = kept_path(job.checkpoint_dir, step)
        if not kept.is_dir():
            raise RuntimeError(
                f"{kept}: the adapter of step {step} is missing (removed after the run passed it); "
                f"delete {job.checkpoint_dir} to train again from the start"
            )
        with atomic_path(out, is_dir=True) as tmp:
            shutil.copytree(kept, tmp, dirs_exist_ok=True)
