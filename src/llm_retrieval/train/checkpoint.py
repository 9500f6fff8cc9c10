"""Resumable checkpoints that are complete or absent, never half-written.

Layout under the run's checkpoint folder (shared by all ranks, so on a shared file
system when ranks span nodes)::

    step-00000500/
        engine/            DeepSpeed's own ZeRO-3 state: LoRA weights, partitioned AdamW
                           moments, LR scheduler (one shard per rank)
        rng-rank{r}.safetensors   each rank's torch RNG state (LoRA dropout)
        trainer_state.json        step, per-step losses, elapsed time
        manifest.json             written last: its presence marks the checkpoint complete

All ranks write into ``.step-00000500.tmp``; rank 0 renames it once every rank is
done, so an interrupted save leaves only a temp folder that is ignored and removed.
The engine shards are DeepSpeed's native format (``torch.save``): internal resume
state, read back only by this code; the trained adapter itself is safetensors.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file, save_file

from ..atomic import write_json

STEP_DIR = re.compile(r"^step-(\d{8})$")
MANIFEST, STATE, ENGINE_TAG = "manifest.json", "trainer_state.json", "engine"


class CheckpointMismatch(RuntimeError):
    """A checkpoint written under another world size, ZeRO stage or packing mode."""


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def step_dir(root: str | Path, step: int) -> Path:
    return Path(root) / f"step-{step:08d}"


def latest_complete(root: str | Path) -> Path | None:
    """Newest checkpoint whose manifest exists (incomplete ones never get one)."""
    root = Path(root)
    if not root.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in root.iterdir() if (m := STEP_DIR.match(p.name)) and (p / MANIFEST).is_file()]
    return max(found)[1] if found else None


def _rng_state() -> dict[str, torch.Tensor]:
    state = {"cpu": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state()
    return state


def save(engine, root: str | Path, step: int, trainer_state: dict, keep: int = 2) -> Path:
    """Collective: every rank calls it after optimizer step ``step``. ``trainer_state["mode"]``
    (ZeRO stage, packing) goes into the manifest so that a resume under another mode is refused."""
    rank = dist.get_rank() if dist.is_initialized() else 0
    final = step_dir(root, step)
    tmp = final.with_name(f".{final.name}.tmp")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)  # left by a save that was killed
        tmp.mkdir(parents=True)
    _barrier()
    # Frozen backbone weights are excluded: they are reloaded from the model folder.
    engine.save_checkpoint(str(tmp), tag=ENGINE_TAG, exclude_frozen_parameters=True)
    save_file(_rng_state(), str(tmp / f"rng-rank{rank}.safetensors"))
    _barrier()
    if rank == 0:
        write_json(tmp / STATE, trainer_state)
        write_json(
            tmp / MANIFEST,
            {
                "step": step,
                "world_size": dist.get_world_size() if dist.is_initialized() else 1,
                **trainer_state.get("mode", {}),
                "complete": True,
            },
        )
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        _prune(root, keep)
    _barrier()
    return final


def _prune(root: str | Path, keep: int) -> None:
    complete = sorted(p for p in Path(root).iterdir() if STEP_DIR.match(p.name) and (p / MANIFEST).is_file())
    for old in complete[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


# Written before these keys existed: ZeRO-3, padded batches.
OLD_MODE = {"zero_stage": 3, "packing": False}


def load(engine, path: Path, expect: dict | None = None) -> dict:
    """Restore engine (weights, optimizer, scheduler) and this rank's RNG; returns the trainer state.

    ``expect`` (ZeRO stage, packing) must match the manifest: the engine state is laid
    out per stage, and packing changes the numerics, so a resumed run would not equal
    an uninterrupted one.
    """
    manifest = json.loads((path / MANIFEST).read_text())
    world = dist.get_world_size() if dist.is_initialized() else 1
    if manifest["world_size"] != world:
        # The data order and the ZeRO partitioning both depend on the world size.
        raise CheckpointMismatch(
            f"{path}: written with world size {manifest['world_size']}, resuming with {world}; "
            f"resume with the same world size or delete the checkpoint folder"
        )
    for key, value in (expect or {}).items():
        written = manifest.get(key, OLD_MODE.get(key))
        if written != value:
            raise CheckpointMismatch(
                f"{path}: written with training.{key}={written}, this run has {key}={value}; "
                f"resume with the same setting or delete the checkpoint folder"
            )
    loaded, _ = engine.load_checkpoint(
        str(path), tag=ENGINE_TAG, load_module_strict=False, load_optimizer_states=True, load_lr_scheduler_states=True
    )
    if loaded is None:
        raise RuntimeError(f"{path}: DeepSpeed could not load the engine state")
    rank = dist.get_rank() if dist.is_initialized() else 0
    rng = load_file(str(path / f"rng-rank{rank}.safetensors"))
    torch.set_rng_state(rng["cpu"])
    if "cuda" in rng and torch.cuda.is_available():
        torch.cuda.set_rng_state(rng["cuda"])
    return json.loads((path / STATE).read_text())
