"""One rank's training loop (started by :mod:`.driver`, identical however the ranks were started).

Per micro-step: the rank's queries and their passages go through the backbone in ONE
forward pass (so ZeRO-3 gathers each layer's weights once for the forward and once for
the backward, not twice each), the embeddings are gathered across ranks for InfoNCE,
and the engine steps at the accumulation boundary.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

import torch
import torch.distributed as dist
from tqdm import tqdm
from transformers import AutoConfig
from transformers.integrations import HfDeepSpeedConfig

from .. import encoders
from ..atomic import write_json
from ..memory_guard import memory_guard
from ..modeling import load_tokenizer
from . import checkpoint, preemption, snapshots
from .adapter import save_adapter
from .dataset import MicroBatch, TaskMixture, instruction_for, passage_instructions_for, read_groups, sample_group
from .engine import build_engine, check_batch, deepspeed_config, init_process_group
from .job import TrainJob
from .loss import info_nce
from .memory import GIB, MemoryEstimate, ModelDims, trained_lora, use_checkpointing, zero_stage_for
from .model import Batcher, trainable_retriever
from .packing import check_attention

FAIL_ENV = "LLM_RETRIEVAL_FAIL_AT_STEP"  # failure injection for resume tests / drills


class InjectedFailure(RuntimeError):
    pass


@dataclass
class RankSession:
    """One rank, set up: engine, data (every task's groups) and the state a run resumes from."""

    job: TrainJob
    deepspeed: object
    engine: object
    schedule: TaskMixture
    groups: list  # per task of job.tasks: its groups
    batcher: Batcher
    state: dict
    rank: int
    world: int
    packing: bool
    checkpointing: bool
    memory: MemoryEstimate
    hf_ds: object  # the live HfDeepSpeedConfig under ZeRO-3 (None otherwise)
    started: float

    def inputs(self, step: int, micro: int) -> list:
        batch = self.schedule.micro_batch(step, micro, self.rank)
        task = self.job.tasks[batch.task]
        return micro_batch(
            self.groups[batch.task],
            self.batcher,
            self.job.training,
            batch,
            self.engine.device,
            f"{task.groups_path}: step {step + 1}, micro-step {micro + 1}, rank {self.rank}",
            self.packing,
            task.query_instructions,
            task.passage_instructions,
        )


def setup(job: TrainJob) -> RankSession:
    """Process group, data, model (partitioned under ZeRO-3) and engine; resumes from the newest checkpoint."""
    started = time.time()
    on_gpu = _bind_device()
    deepspeed = init_process_group(on_gpu)
    rank, world = dist.get_rank(), dist.get_world_size()
    cfg = job.training
    check_batch(cfg, world)
    preemption.install()

    groups = [read_groups(task.groups_path) for task in job.tasks]
    schedule = _task_mixture(job, groups, world)
    batcher = Batcher(load_tokenizer(job.backbone_path), cfg["max_length"], job.architecture, job.backbone_path)
    template = job.deepspeed_config or cfg["deepspeed_config"]
    dims = ModelDims.from_config(AutoConfig.from_pretrained(job.backbone_path))
    device_bytes = torch.cuda.get_device_properties(torch.cuda.current_device()).total_memory if on_gpu else None
    # zero_stage auto: 2 where its memory estimate fits (the frozen backbone is then never gathered).
    ds_config = deepspeed_config(
        template, {**cfg, "zero_stage": zero_stage_for(cfg, dims, world, device_bytes)}, world, on_gpu, dims.hidden
    )
    stage = ds_config["zero_optimization"]["stage"]
    checkpointing, memory = use_checkpointing(cfg["gradient_checkpointing"], dims, cfg, world, stage, device_bytes)
    checkpointing = checkpointing and on_gpu  # CPU runs (tests) are tiny: no recomputation
    if rank == 0:
        print(
            f"per-GPU memory estimate (ZeRO-{stage}, world {world}, gradient checkpointing "
            f"{'on' if checkpointing else 'off'} [{cfg['gradient_checkpointing']}]): "
            f"{memory.describe()}",
            flush=True,
        )

    torch.manual_seed(cfg["seed"])  # identical LoRA initialisation on every rank
    # Under ZeRO-3 a live HfDeepSpeedConfig makes from_pretrained build the model inside
    # deepspeed.zero.Init: each rank keeps only its partition (no full copy in host memory).
    hf_ds = HfDeepSpeedConfig(ds_config) if stage == 3 else None
    model = trainable_retriever(
        job.backbone_path,
        job.architecture,
        trained_lora(cfg),
        "bfloat16" if on_gpu else "float32",
        checkpointing,
        job.pooling,
        "cuda" if on_gpu else "cpu",
    )
    # Packing derives causal per-sequence masks from positions: decoders only; an encoder runs padded.
    packing = cfg["packing"] and not encoders.family(job.architecture).bidirectional
    if packing:
        path = check_attention(model.backbone.config._attn_implementation)
        if rank == 0:
            print(f"packing: one padding-free row per micro-step, attention via {path}", flush=True)
    snapshots.check_steps(job.snapshots, schedule.total_steps)
    engine = build_engine(deepspeed, model, ds_config, schedule.total_steps, cfg["warmup_ratio"])  # default: the schema
    torch.manual_seed(cfg["seed"] * 1000 + rank)  # dropout streams differ per rank

    state = _resumed_state(engine, job.checkpoint_dir, packing)
    return RankSession(
        job, deepspeed, engine, schedule, groups, batcher, state, rank, world, packing, checkpointing, memory, hf_ds,
        started,
    )  # fmt: skip


def _bind_device() -> bool:
    """This rank's GPU (cuda:LOCAL_RANK), or its share of the CPU's cores; True on a GPU."""
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        return True
    # Ranks on one CPU share its cores; oversubscribed BLAS threads slow every rank down.
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))
    return False


def _task_mixture(job: TrainJob, groups: list, world: int) -> TaskMixture:
    cfg = job.training
    return TaskMixture(
        [len(g) for g in groups], [task.weight for task in job.tasks], cfg["per_device_batch"],
        cfg["gradient_accumulation"], world, cfg["seed"], cfg["epochs"], cfg.get("max_steps"),
    )  # fmt: skip


def _resumed_state(engine, checkpoint_dir: str, packing: bool) -> dict:
    """The newest complete checkpoint's state, or a fresh one; a checkpoint must match this run's mode."""
    mode = {"zero_stage": engine.zero_optimization_stage(), "packing": packing}  # see checkpoint.load
    state = {"step": 0, "losses": [], "train_seconds": 0.0, "resumed_from": []}
    latest = checkpoint.latest_complete(checkpoint_dir)
    if latest is not None:
        state = checkpoint.load(engine, latest, expect=mode)
        state["resumed_from"].append(state["step"])
    state["mode"] = mode
    return state


def train_rank(job: TrainJob) -> dict | None:
    """Train (or resume) on this rank; rank 0 writes the adapter and the log. Returns the log on rank 0."""
    session = setup(job)
    fail_at = job.fail_at_step or (int(os.environ[FAIL_ENV]) if os.environ.get(FAIL_ENV) else None)
    engine, rank, world = session.engine, session.rank, session.world
    run_log = _loop(session, fail_at)
    save_adapter(engine, job.adapter_dir, rank, session.deepspeed)
    peak_host = [None] * world  # peak resident host memory of every rank (GiB), for the log
    dist.all_gather_object(peak_host, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2)
    if rank == 0:
        snapshots.export(job)
        run_log.update(
            packing=session.packing,
            gradient_checkpointing=session.checkpointing,
            memory_estimate_gib=session.memory.total / GIB,
            peak_host_memory_gib_per_rank=peak_host,
            wall_seconds_this_process=time.time() - session.started,
            optimizer_steps=engine.global_steps,
            zero_stage=engine.zero_optimization_stage(),
            dtype=str(next(engine.module.parameters()).dtype),
        )
        write_json(job.log_path, run_log)
    dist.barrier()
    return run_log if rank == 0 else None


def micro_batch(
    groups,
    batcher,
    cfg,
    batch: MicroBatch,
    device,
    where: str = "micro-step",
    packing: bool | None = None,
    query_instructions: tuple[str, ...] = (),
    passage_instructions: tuple[str, ...] = (),
) -> list:
    """The model inputs of one micro-step: this rank's queries and, per query, its sampled group, each text with
    its instruction (drawn with the task's seed) — one packed row when packing (``training.packing`` unless the
    rank decided otherwise, as for an encoder), else padded query and passage tensors."""
    group_size, seed, epoch, indices = cfg["group_size"], batch.seed, batch.epoch, batch.indices
    sampled = [sample_group(groups[i], group_size, seed, epoch, i) for i in indices]
    passages = [p for group in sampled for p in group]
    queries, texts = [groups[i].query for i in indices], batcher.passage_texts(passages)
    instructions = [instruction_for(query_instructions, seed, epoch, i) for i in indices]
    told = [
        t
        for i, group in zip(indices, sampled)
        for t in passage_instructions_for(passage_instructions, seed, epoch, i, len(group))
    ]
    if cfg["packing"] if packing is None else packing:
        return [batcher.packed(queries, texts, cfg["max_packed_tokens"], where, instructions, told).to(device)]
    q, p = batcher.tensors("query", queries, instructions), batcher.tensors("passage", texts, told)
    return [t.to(device) for t in (*q, *p)]


def forward_backward(engine, inputs, cfg: dict, world: int) -> float:
    """Forward (one pass), InfoNCE over the micro-step gathered across ranks, backward; returns the loss."""
    with memory_guard(
        f"a micro-step of {cfg['per_device_batch']} queries x {cfg['group_size']} passages",
        "lower training.per_device_batch (raising gradient_accumulation keeps the global batch) "
        "or training.max_length, or set gradient_checkpointing: true",
    ):
        q, p = engine(*inputs)
        loss = info_nce(q, p, cfg["temperature"])
        # The engine averages gradients over ranks; every rank's loss already
        # covers the global batch, so scale back to the full gradient.
        engine.backward(loss * world)
    return loss.item()


def micro_step(engine, inputs, cfg: dict, world: int) -> float:
    """One micro-step: forward/backward, then the engine step (it updates only at the accumulation boundary)."""
    loss = forward_backward(engine, inputs, cfg, world)
    engine.step()
    return loss


def _loop(session: RankSession, fail_at: int | None) -> dict:
    engine, job, schedule, state = session.engine, session.job, session.schedule, session.state
    rank, world = session.rank, session.world
    cfg = job.training
    every = cfg["checkpoint_every"]
    start = state["step"]
    bar = tqdm(
        range(start, schedule.total_steps),
        initial=start,
        total=schedule.total_steps,
        desc="train",
        unit="step",
        disable=rank != 0 or None,
        mininterval=5,
    )
    snapshots.maybe_save(engine, job, start, rank)
    for step in bar:
        t0 = time.time()
        micro_losses = []
        for micro in range(cfg["gradient_accumulation"]):
            micro_losses.append(micro_step(engine, session.inputs(step, micro), cfg, world))
        state["step"] = step + 1
        state["losses"].append(sum(micro_losses) / len(micro_losses))
        state["train_seconds"] += time.time() - t0
        state.setdefault("step_seconds", []).append(time.time() - t0)
        bar.set_postfix(loss=f"{state['losses'][-1]:.4f}")
        if every and state["step"] % every == 0 and state["step"] < schedule.total_steps:
            checkpoint.save(engine, job.checkpoint_dir, state["step"], state)
        snapshots.maybe_save(engine, job, state["step"], rank)
        preemption.drill_signal(state["step"], rank)
        if state["step"] < schedule.total_steps and preemption.stop_requested():  # SIGTERM: time limit
            checkpoint.save(engine, job.checkpoint_dir, state["step"], state)
            preemption.exit_for_retry(state["step"])
        if fail_at is not None and state["step"] == fail_at:
            raise InjectedFailure(f"injected failure after optimizer step {fail_at}")
    steps_run = state["step"] - start
    return {
        "steps": state["step"],
        "losses": state["losses"],
        "world_size": world,
        "global_batch": schedule.global_batch,
        "group_size": cfg["group_size"],
        "steps_per_epoch": schedule.steps_per_epoch,
        "train_seconds": state["train_seconds"],
        "tasks": [task.name for task in job.tasks],
        "task_steps_per_epoch": schedule.counts,
        "seconds_per_step": state["train_seconds"] / max(state["step"], 1),
        "step_seconds": state.get("step_seconds", []),
        "steps_this_process": steps_run,
        "resumed_from": state["resumed_from"],
    }
