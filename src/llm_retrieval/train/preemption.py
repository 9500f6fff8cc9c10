"""Stopping training cleanly when Slurm's time limit (or a preemption) arrives.

At the time limit Slurm sends SIGTERM to every process of the job and SIGKILL
``KillWait`` seconds later (30 s by default). The handler installed here only sets a
flag; the training loop asks :func:`stop_requested` after each optimizer step, and
when it is set the ranks write a checkpoint together and leave with
:data:`RETRY_EXIT` (EX_TEMPFAIL). Snakemake's ``retries`` resubmit the job, which
resumes from that checkpoint: no optimizer step is lost, whatever the checkpoint
interval. A step takes seconds and a LoRA checkpoint little more, well inside
KillWait; clusters with a short KillWait can ask for the signal earlier
(``sbatch --signal=TERM@120``), which this handler treats the same way.
"""

from __future__ import annotations

import logging
import os
import signal
import sys

log = logging.getLogger(__name__)
RETRY_EXIT = 75  # EX_TEMPFAIL: "try again later"
# The preflight drill (llm_retrieval.preflight.drill): rank 0 sends itself a real SIGTERM after this
# optimizer step, so the handler, the ranks' agreement, the checkpoint and the exit code all run.
SIGTERM_ENV = "LLM_RETRIEVAL_SIGTERM_AT_STEP"
SIGNALS = (signal.SIGTERM, signal.SIGUSR1)

_requested: list[int] = []


def _handler(signum, frame) -> None:
    _requested.append(signum)


def install() -> None:
    """Catch SIGTERM / SIGUSR1 (main thread only; elsewhere nothing is installed)."""
    _requested.clear()
    for sig in SIGNALS:
        try:
            signal.signal(sig, _handler)
        except ValueError:  # not the main thread
            return


def drill_signal(step: int, rank: int) -> None:
    """SIGTERM this process after ``step`` when :data:`SIGTERM_ENV` names it (rank 0 only)."""
    if rank == 0 and os.environ.get(SIGTERM_ENV) == str(step):
        os.kill(os.getpid(), signal.SIGTERM)


def stop_requested() -> bool:
    """True on every rank as soon as any rank got the signal (the ranks must checkpoint together)."""
    import torch  # here, not at the top: the preflight drill reads this module's constants at DAG build
    import torch.distributed as dist

    flag = torch.tensor([1 if _requested else 0])
    if dist.is_available() and dist.is_initialized():
        if dist.get_backend() == "nccl":
            flag = flag.cuda()
        dist.all_reduce(flag, op=dist.ReduceOp.MAX)
    return bool(flag.item())


def exit_for_retry(step: int) -> None:
    """Leave with :data:`RETRY_EXIT` after the checkpoint of ``step`` was written."""
    names = ", ".join(signal.Signals(s).name for s in _requested) or "a signal on another rank"
    message = (
        f"stopping after optimizer step {step} on {names} (time limit or preemption): "
        f"checkpoint written; the retried job resumes from it (exit {RETRY_EXIT})"
    )
    log.warning(message)
    print(message, file=sys.stderr, flush=True)
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
    sys.exit(RETRY_EXIT)
