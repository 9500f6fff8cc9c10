"""The launcher: starts the training ranks, each running :func:`.rank.train_rank`.

Entry point: :func:`launch` (what ``workflow/scripts/train_lora.py`` calls). The ranks
run the same loop whichever way they were started:

- under Slurm with several tasks (``srun``, one task per GPU, any number of nodes):
  this process *is* one rank; ``submitit``'s ``TorchDistributedEnvironment`` turns the
  Slurm variables into ``RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT``;
- otherwise (a single node, a laptop, the tests): ``world_size`` local processes are
  spawned with ``torch.multiprocessing`` and the same variables set by hand.

Modules: :mod:`.job` (the run's description), :mod:`.rank` (the per-rank loop), :mod:`.engine` (DeepSpeed config and engine),
:mod:`.adapter` (adapter export). On GPU: NCCL, bf16. On CPU: DeepSpeed's CPU accelerator
with gloo and fp32 (used by the tests; ZeRO-3 runs unchanged there).
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import torch.distributed as dist

from .engine import check_batch
from .job import TrainJob
from .rank import train_rank

# --- starting the ranks ------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


RANK_VARIABLES = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def _spawned(index: int, job: TrainJob, world: int, port: int) -> None:
    """One rank. Its variables are undone afterwards: a single rank runs in the caller's process,
    whose later children (an srun, say) must not inherit a finished rendezvous."""
    saved = {name: os.environ.get(name) for name in RANK_VARIABLES}
    os.environ.update(
        RANK=str(index),
        LOCAL_RANK=str(index),
        WORLD_SIZE=str(world),
        LOCAL_WORLD_SIZE=str(world),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    try:
        train_rank(job)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def under_slurm_ranks() -> bool:
    """True when Slurm started this process as one of several tasks (``srun``)."""
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ


def launch(job: TrainJob, world_size: int | None = None) -> dict | None:
    """Run training with ``world_size`` ranks (default: ``training.world_size``); returns rank 0's log."""
    if under_slurm_ranks():
        import submitit

        os.environ.setdefault("SUBMITIT_EXECUTOR", "slurm")  # the helper cannot tell srun tasks apart otherwise
        env = submitit.helpers.TorchDistributedEnvironment().export(set_cuda_visible_devices=False)
        if world_size is not None and env.world_size != world_size:
            raise ValueError(f"Slurm started {env.world_size} tasks but training asks for {world_size} ranks")
        try:
            return train_rank(job)
        finally:
            dist.destroy_process_group()
    world = world_size or job.training.get("world_size", 1)
    check_batch(job.training, world)
    port = _free_port()
    if world == 1:
        _spawned(0, job, 1, port)  # in this process: simpler tracebacks, no pickling
        return json.loads(Path(job.log_path).read_text())
    import torch.multiprocessing as mp

    mp.spawn(_spawned, args=(job, world, port), nprocs=world, join=True)
    return json.loads(Path(job.log_path).read_text())
