"""One rank's training loop, and the launcher that starts the ranks.

Entry point: :func:`launch` (what ``workflow/scripts/train_lora.py`` calls). It
runs the same :func:`train_rank` whichever way the ranks were started:

- under Slurm with several tasks (``srun``, one task per GPU, any number of nodes):
  this process *is* one rank; ``submitit``'s ``TorchDistributedEnvironment`` turns the
  Slurm variables into ``RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT``;
- otherwise (a single node, a laptop, the tests): ``world_size`` local processes are
  spawned with ``torch.multiprocessing`` and the same variables set by hand.

On GPU: NCCL, bf16, gradient checkpointing as configured. On CPU: DeepSpeed's CPU
accelerator with gloo and fp32 (used by the tests; ZeRO-3 runs unchanged there).
"""
from __future__ import annotations

import json
import math
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.distributed as dist
from tqdm import tqdm

from ..atomic import atomic_path, write_json
from ..modeling import load_tokenizer
from . import checkpoint
from .dataset import GroupSchedule, read_groups, sample_group
from .loss import info_nce
from .model import Batcher, trainable_retriever

FAIL_ENV = "LLM_RETRIEVAL_FAIL_AT_STEP"  # failure injection for resume tests / drills


class InjectedFailure(RuntimeError):
    pass


@dataclass(frozen=True)
class TrainJob:
    """Everything a rank needs (picklable: it crosses ``spawn``)."""

    backbone_path: str
    architecture: str
    groups_path: str
    adapter_dir: str
    checkpoint_dir: str
    log_path: str
    training: dict                      # the config's `training` section
    deepspeed_config: str | None = None  # defaults to training.deepspeed_config
    fail_at_step: int | None = None      # raise after this optimizer step (1-based), for tests
    extra: dict = field(default_factory=dict)


def check_batch(training: dict, world_size: int) -> int:
    """global batch = per-device x accumulation x world size, or a clear error."""
    product = training["per_device_batch"] * training["gradient_accumulation"] * world_size
    if product != training["global_batch"]:
        raise ValueError(
            f"training.global_batch={training['global_batch']} but per_device_batch {training['per_device_batch']} "
            f"x gradient_accumulation {training['gradient_accumulation']} x world size {world_size} = {product}")
    return product


def deepspeed_config(template: str | Path, training: dict, world_size: int, on_gpu: bool, hidden_size: int) -> dict:
    """The ZeRO-3 JSON with every ``"auto"`` filled from the training config and the model."""
    config = json.loads(Path(template).read_text())
    values = {
        "train_batch_size": check_batch(training, world_size),
        "train_micro_batch_size_per_gpu": training["per_device_batch"],
        "gradient_accumulation_steps": training["gradient_accumulation"],
        "bf16.enabled": on_gpu,
        "optimizer.params.lr": training["learning_rate"],
        "optimizer.params.weight_decay": training.get("weight_decay", 0.0),
        # The usual sizes for ZeRO-3 buckets, scaled to the model width (as HF's integration does).
        "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
        "zero_optimization.stage3_prefetch_bucket_size": int(0.9 * hidden_size * hidden_size),
        "zero_optimization.stage3_param_persistence_threshold": 10 * hidden_size,
    }
    _fill_auto(config, values, template, "")
    return config


def _fill_auto(node: dict, values: dict, template, prefix: str) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            _fill_auto(value, values, template, path + ".")
        elif value == "auto":
            if path not in values:
                raise ValueError(f"{template}: no value known for \"auto\" at {path}")
            node[key] = values[path]


# --- one rank ---------------------------------------------------------------------------

def _init_process_group(on_gpu: bool):
    if not on_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    import deepspeed.ops

    if not on_gpu:
        # DeepSpeed JIT-compiles a shared-memory all-reduce for CPU *inference* at
        # init (half a minute, needs a compiler); training never calls it.
        deepspeed.ops.__compatible_ops__["deepspeed_shm_comm"] = False
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")
    return deepspeed


def train_rank(job: TrainJob) -> dict | None:
    """Train (or resume) on this rank; rank 0 writes the adapter and the log. Returns the log on rank 0."""
    started = time.time()
    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)) % torch.cuda.device_count())
    else:
        # Ranks on one CPU share its cores; oversubscribed BLAS threads slow every rank down.
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", 1))))
    deepspeed = _init_process_group(on_gpu)
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = job.training
    check_batch(cfg, world)
    fail_at = job.fail_at_step or (int(os.environ[FAIL_ENV]) if os.environ.get(FAIL_ENV) else None)

    groups = read_groups(job.groups_path)
    schedule = GroupSchedule(len(groups), cfg["per_device_batch"], cfg["gradient_accumulation"], world,
                             cfg["seed"], cfg.get("epochs", 1), cfg.get("max_steps"))
    tokenizer = load_tokenizer(job.backbone_path)
    batcher = Batcher(tokenizer, cfg["max_length"])

    torch.manual_seed(cfg["seed"])  # identical LoRA initialisation on every rank
    model = trainable_retriever(job.backbone_path, job.architecture, cfg["lora"],
                                "bfloat16" if on_gpu else "float32",
                                bool(cfg.get("gradient_checkpointing")) and on_gpu)
    ds_config = deepspeed_config(job.deepspeed_config or cfg["deepspeed_config"], cfg, world, on_gpu,
                                 model.backbone.config.hidden_size)
    total = schedule.total_steps
    warmup = math.ceil(cfg.get("warmup_ratio", 0.0) * total)

    def scheduler(optimizer):
        from transformers import get_linear_schedule_with_warmup
        return get_linear_schedule_with_warmup(optimizer, warmup, total)

    engine, _, _, _ = deepspeed.initialize(model=model, config=ds_config, lr_scheduler=scheduler,
                                           model_parameters=[p for p in model.parameters() if p.requires_grad])
    torch.manual_seed(cfg["seed"] * 1000 + rank)  # dropout streams differ per rank

    state = {"step": 0, "losses": [], "train_seconds": 0.0, "resumed_from": []}
    latest = checkpoint.latest_complete(job.checkpoint_dir)
    if latest is not None:
        state = checkpoint.load(engine, latest)
        state["resumed_from"].append(state["step"])
    run_log = _loop(engine, job, schedule, groups, batcher, state, rank, world, fail_at)
    _save_adapter(engine, job.adapter_dir, rank, deepspeed)
    if rank == 0:
        run_log.update(wall_seconds_this_process=time.time() - started, optimizer_steps=engine.global_steps,
                       zero_stage=engine.zero_optimization_stage(), dtype=str(next(engine.module.parameters()).dtype))
        write_json(job.log_path, run_log)
    dist.barrier()
    return run_log if rank == 0 else None


def _micro_batch(groups, batcher, cfg, epoch, indices, device):
    group_size = cfg["group_size"]
    passages = [p for i in indices for p in sample_group(groups[i], group_size, cfg["seed"], epoch, i)]
    q = batcher.tensors("query", [groups[i].query for i in indices])
    p = batcher.tensors("passage", batcher.passage_texts(passages))
    return [t.to(device) for t in (*q, *p)]


def _loop(engine, job, schedule, groups, batcher, state, rank, world, fail_at) -> dict:
    cfg = job.training
    every = cfg.get("checkpoint_every") or 0
    start = state["step"]
    bar = tqdm(range(start, schedule.total_steps), initial=start, total=schedule.total_steps,
               desc="train", unit="step", disable=rank != 0 or None, mininterval=5)
    for step in bar:
        t0 = time.time()
        micro_losses = []
        for micro in range(cfg["gradient_accumulation"]):
            epoch, indices = schedule.micro_batch(step, micro, rank)
            q, p = engine(*_micro_batch(groups, batcher, cfg, epoch, indices, engine.device))
            loss = info_nce(q, p, cfg["temperature"])
            # The engine averages gradients over ranks; every rank's loss already
            # covers the global batch, so scale back to the full gradient.
            engine.backward(loss * world)
            engine.step()  # updates only at the accumulation boundary
            micro_losses.append(loss.item())
        state["step"] = step + 1
        state["losses"].append(sum(micro_losses) / len(micro_losses))
        state["train_seconds"] += time.time() - t0
        state.setdefault("step_seconds", []).append(time.time() - t0)
        bar.set_postfix(loss=f"{state['losses'][-1]:.4f}")
        if every and state["step"] % every == 0 and state["step"] < schedule.total_steps:
            checkpoint.save(engine, job.checkpoint_dir, state["step"], state)
        if fail_at is not None and state["step"] == fail_at:
            raise InjectedFailure(f"injected failure after optimizer step {fail_at}")
    steps_run = state["step"] - start
    return {"steps": state["step"], "losses": state["losses"], "world_size": world,
            "global_batch": schedule.global_batch, "group_size": cfg["group_size"],
            "steps_per_epoch": schedule.steps_per_epoch, "train_seconds": state["train_seconds"],
            "seconds_per_step": state["train_seconds"] / max(state["step"], 1),
            "step_seconds": state.get("step_seconds", []),
            "steps_this_process": steps_run, "resumed_from": state["resumed_from"]}


def _save_adapter(engine, adapter_dir: str, rank: int, deepspeed) -> None:
    """Gather the ZeRO-3 partitioned LoRA weights and write them as safetensors on rank 0."""
    from peft import get_peft_model_state_dict

    peft_model = engine.module.backbone
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    with deepspeed.zero.GatheredParameters(trainable, modifier_rank=None):
        if rank == 0:
            weights = {k: v.detach().float().cpu().clone() for k, v in get_peft_model_state_dict(peft_model).items()}
    if rank == 0:
        with atomic_path(adapter_dir, is_dir=True) as tmp:
            peft_model.save_pretrained(str(tmp), state_dict=weights, safe_serialization=True)
    dist.barrier()


# --- starting the ranks ------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _spawned(index: int, job: TrainJob, world: int, port: int) -> None:
    os.environ.update(RANK=str(index), LOCAL_RANK=str(index), WORLD_SIZE=str(world), LOCAL_WORLD_SIZE=str(world),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    try:
        train_rank(job)
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()


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
