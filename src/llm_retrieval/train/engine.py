"""The DeepSpeed side of training: one config template, the process group, the engine.

There is one template (``config/deepspeed/zero3.json``); ``training.zero_stage`` (2 or 3)
overrides its stage, so stage 2 is an option and not a second file to keep in step.
Every ``"auto"`` in the template is filled here from the training config and the model.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import torch

from ..modeling import check_stand_ins_on
from ..study import check_global_batch as check_batch

ZERO_STAGES = (2, 3)


class ZeroStageError(ValueError):
    """``training.zero_stage`` names a stage this engine does not run."""


def zero_stage(training: dict, template: dict | None = None) -> int:
    """The ZeRO stage to run: ``training.zero_stage`` if set, else the template's (3)."""
    stage = training.get("zero_stage")
    if stage is None:
        stage = (template or {}).get("zero_optimization", {}).get("stage", 3)
    if stage not in ZERO_STAGES:
        raise ZeroStageError(
            f"training.zero_stage={stage!r}: this trainer runs ZeRO stage 2 or 3 "
            f"(3 is the protocol's; 2 keeps a full bf16 copy of the weights on every GPU; "
            f"auto is resolved to one of them by train.memory.zero_stage_for)"
        )
    return stage


def deepspeed_config(template: str | Path, training: dict, world_size: int, on_gpu: bool, hidden_size: int) -> dict:
    """The DeepSpeed JSON with every ``"auto"`` filled from the training config and the model."""
    config = json.loads(Path(template).read_text())
    stage = zero_stage(training, config)
    values = {
        "train_batch_size": check_batch(training, world_size),
        "train_micro_batch_size_per_gpu": training["per_device_batch"],
        "gradient_accumulation_steps": training["gradient_accumulation"],
        "bf16.enabled": on_gpu,
        "optimizer.params.lr": training["learning_rate"],
        # Only the LoRA gradients (tens of MB) are reduced: one bucket of h^2 holds a layer's worth.
        "zero_optimization.reduce_bucket_size": hidden_size * hidden_size,
        # Prefetch ~25 h^2 elements, about 1.4 Qwen2 decoder layers (a layer is ~18 h^2): the next
        # layer's all-gather overlaps the current layer's compute instead of stalling it.
        "zero_optimization.stage3_prefetch_bucket_size": int(2 * 12.5 * hidden_size * hidden_size),
        # Keep small tensors (norms, biases, LoRA A/B up to ~r*h) whole on every rank: gathering
        # thousands of tiny tensors costs latency, not bandwidth, and they total a few MB.
        "zero_optimization.stage3_param_persistence_threshold": 100 * hidden_size,
    }
    _fill_auto(config, values, template, "")
    config["zero_optimization"]["stage"] = stage
    if stage != 3:  # stage-3-only keys would only confuse a reader of the effective config
        config["zero_optimization"] = {
            k: v for k, v in config["zero_optimization"].items() if not k.startswith("stage3_")
        }
    return config


def _fill_auto(node: dict, values: dict, template, prefix: str) -> None:
    for key, value in node.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            _fill_auto(value, values, template, path + ".")
        elif value == "auto":
            if path not in values:
                raise ValueError(f'{template}: no value known for "auto" at {path}')
            node[key] = values[path]


def init_process_group(on_gpu: bool):
    """DeepSpeed's distributed init (NCCL on GPU, gloo on CPU); returns the ``deepspeed`` module."""
    if not on_gpu:
        os.environ.setdefault("DS_ACCELERATOR", "cpu")
    import deepspeed
    import deepspeed.ops

    if not on_gpu:
        # DeepSpeed JIT-compiles a shared-memory all-reduce for CPU *inference* at init (half a
        # minute, needs a compiler); training never calls it. The table is set, not read: reading
        # deepspeed.ops.__compatible_ops__ first probes every op, and the async-I/O op's probe links a
        # test program against libaio, whose "/usr/bin/ld: cannot find -laio" and "collect2: error"
        # reach the terminal (DeepSpeed hides them from sys.stderr, which is the job's log here, not
        # from the linker's fd 2). The shm op is the only entry init reads; training uses no other op.
        # (On GPU the CUDA accelerator has no shm op, and nothing reads the table.)
        deepspeed.ops.__compatible_ops__ = {"deepspeed_shm_comm": False}
    deepspeed.init_distributed(dist_backend="nccl" if on_gpu else "gloo")
    return deepspeed


def build_engine(deepspeed, model: torch.nn.Module, ds_config: dict, total_steps: int, warmup_ratio: float):
    """DeepSpeed engine over the trainable (LoRA) parameters, AdamW + linear warm-up/decay."""
    warmup = math.ceil(warmup_ratio * total_steps)

    def scheduler(optimizer):
        from transformers import get_linear_schedule_with_warmup

        return get_linear_schedule_with_warmup(optimizer, warmup, total_steps)

    if ds_config["zero_optimization"]["stage"] == 3 and torch.cuda.is_available():
        device = torch.device("cuda", torch.cuda.current_device())
        count = check_stand_ins_on(model, device)
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"ZeRO-3: all {count} stand-ins on {device} before deepspeed.initialize", flush=True)
    engine, _, _, _ = deepspeed.initialize(
        model=model,
        config=ds_config,
        lr_scheduler=scheduler,
        model_parameters=[p for p in model.parameters() if p.requires_grad],
    )
    return engine
