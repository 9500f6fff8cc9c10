"""Cluster resources per kind of job, from the study config's ``slurm:`` section.

The one place a user describes their cluster is ``slurm:`` in the config file
(partitions, account, GPU model, GPUs per node, ...; see docs/slurm.md). Each
Snakemake rule asks for a *kind* of job (workflow/rules/resources.smk) and unpacks
``rule_resources(config, kind)`` into its resources.

Local runs (``--cores N``) ignore everything here except threads (which Snakemake
caps at --cores) and mem_mb/runtime, which are unconstrained unless given with
--resources. The Slurm executor plugin turns the resources into sbatch options:
slurm_partition, slurm_account, runtime (minutes), mem_mb, gpu / gpu_model
(--gpus=model:n), gres (per node), cpus_per_gpu, cpus_per_task, nodes,
tasks_per_node + mpi (multi-rank jobs).
"""

from __future__ import annotations

import copy
import math

from .config_schema import RENAMED_KEYS

SLURM_DEFAULTS = {
    "account": None,  # slurm_account; None: the user's default account
    "partitions": {"cpu": None, "gpu": None},  # None: the cluster's default partition
    "qos": None,
    "gpu_model": None,  # GRES type, e.g. h100 (sbatch --gpus=h100:1); None: any GPU
    "gpus_per_node": 8,
    "cpus_per_gpu": 8,
    "mem_mb_per_gpu": 96000,
    "gpu_memory_mb": 81920,  # memory of one GPU (H100 80 GB): bounds the backbone size (llm_retrieval.model_resources)
    # A retry gets memory * mem_growth**(attempt-1); runtime * runtime_growth**(attempt-1), except for
    # the RESUMABLE_KINDS: they lose nothing at a time limit, so each attempt gets the same time again.
    "runtime_growth": 2.0,
    "mem_growth": 1.5,
    # The partition's limits; every request is capped by them (after growth and model sizing).
    "max_threads": None,
    "max_mem_mb": None,  # None: one GPU node's memory, gpus_per_node x mem_mb_per_gpu
    "max_runtime": 2880,  # minutes: a common 48 h partition limit
    # Seconds before the time limit at which Slurm sends training SIGUSR1 (sbatch --signal), so the
    # checkpoint need not fit in KillWait (30 s by default) after SIGTERM; None: no early warning.
    "preemption_warning_s": 600,
    # Per kind of job: CPU kinds take threads/mem_mb/runtime (minutes); GPU kinds take gpus/runtime
    # (CPUs follow from the GPU count; memory too, unless mem_mb is given: encoding and search only).
    "kinds": {
        "data": {"threads": 4, "mem_mb": 32000, "runtime": 180},
        "bm25": {"threads": 16, "mem_mb": 96000, "runtime": 360},
        "resolve_backbone": {"threads": 4, "mem_mb": 64000, "runtime": 120},
        "evaluate": {"threads": 1, "mem_mb": 8000, "runtime": 30},
        "report": {"threads": 1, "mem_mb": 4000, "runtime": 15},
        "training_groups": {"threads": 16, "mem_mb": 96000, "runtime": 480},
        "encode_queries_and_first_shard": {"gpus": 1, "runtime": 480},
        "encode_corpus_shard": {"gpus": 1, "runtime": 480},
        # Exact search of one collection for all its query sets. On GPUs the whole corpus is held
        # as fp16 (MS MARCO 8.8M x 3584: 63 GB); more GPUs shard it (docs/search.md).
        "search": {"gpus": 1, "runtime": 120},
        # GPUs for training come from training.world_size, one rank per GPU.
        "train_lora": {"runtime": 2880},
    },
}

GPU_KINDS = ("encode_queries_and_first_shard", "encode_corpus_shard", "search", "train_lora")
# Jobs that resume where a killed attempt stopped (training from its checkpoint, encoding chunk by chunk).
RESUMABLE_KINDS = ("encode_queries_and_first_shard", "encode_corpus_shard", "train_lora")

# Old names in a user's slurm.kinds are refused with the new one (from the one table of renamed config keys).
RENAMED_KINDS = {
    old.removeprefix("slurm.kinds."): new.removeprefix("slurm.kinds.")
    for old, (new, _) in RENAMED_KEYS.items()
    if old.startswith("slurm.kinds.")
}


class RenamedKindError(ValueError):
    """A job kind in slurm.kinds (or a rule) uses a name that was renamed."""

    def __init__(self, where: str, old: str):
        new = RENAMED_KINDS[old]
        super().__init__(
            f"config key {where}.{old}: the job kind {old!r} is now called {new!r} (after the rule it serves); "
            f"rename it to {new} in your config's slurm.kinds"
        )


def _merge(base, override, where):
    """Deep-merge override into a copy of base; unknown keys are errors."""
    out = copy.deepcopy(base)
    for key, value in (override or {}).items():
        if key not in base:
            raise ValueError(f"config key {where}.{key}: unknown (known: {', '.join(sorted(base))})")
        if isinstance(base[key], dict) and key != "kinds":
            out[key] = _merge(base[key], value, f"{where}.{key}")
        elif key == "kinds":
            for kind, spec in (value or {}).items():
                if kind in RENAMED_KINDS:
                    raise RenamedKindError(f"{where}.kinds", kind)
                if kind not in base["kinds"]:
                    raise ValueError(f"config key {where}.kinds.{kind}: unknown kind")
                out["kinds"][kind] = {**base["kinds"][kind], **(spec or {})}
        else:
            out[key] = value
    return out


def slurm_settings(config: dict) -> dict:
    """The cluster settings: SLURM_DEFAULTS overridden by config['slurm']."""
    return _merge(SLURM_DEFAULTS, config.get("slurm") or {}, "slurm")


def _cap(value, cap):
    return value if cap is None else min(value, cap)


def _grown(base, growth, cap, attempt):
    """A resource that grows with the retry attempt (1, 2, ...), capped."""
    return int(_cap(math.ceil(base * growth ** (attempt - 1)), cap))


def _kind(config: dict, kind: str):
    settings = slurm_settings(config)
    if kind in RENAMED_KINDS:
        raise RenamedKindError("job kind", kind)
    if kind not in settings["kinds"]:
        raise ValueError(f"unknown job kind {kind!r} (known: {', '.join(settings['kinds'])})")
    return settings, settings["kinds"][kind]


def train_layout(config: dict) -> tuple[int, int]:
    """(nodes, ranks per node) for training: one rank per GPU, whole nodes."""
    settings = slurm_settings(config)
    ranks = int((config.get("training") or {}).get("world_size", 1))
    per_node = min(ranks, settings["gpus_per_node"])
    if ranks % per_node:
        raise ValueError(
            f"config key training.world_size={ranks}: not a multiple of "
            f"slurm.gpus_per_node={settings['gpus_per_node']} (training takes whole nodes)"
        )
    return ranks // per_node, per_node


def rule_threads(config: dict, kind: str) -> int:
    """threads: for a rule of this kind (CPUs per task; per rank for training)."""
    settings, spec = _kind(config, kind)
    if kind in GPU_KINDS:
        gpus = 1 if kind == "train_lora" else spec["gpus"]
        return int(_cap(settings["cpus_per_gpu"] * gpus, settings["max_threads"]))
    return int(_cap(spec["threads"], settings["max_threads"]))


def max_mem_mb(settings: dict) -> int:
    """The most memory one job may ask for: slurm.max_mem_mb, else one GPU node's memory."""
    if settings["max_mem_mb"] is not None:
        return settings["max_mem_mb"]
    return settings["gpus_per_node"] * settings["mem_mb_per_gpu"]


def capped_runtime(settings: dict, minutes: int) -> int:
    return int(_cap(minutes, settings["max_runtime"]))


def capped_mem(settings: dict, mem_mb: int) -> int:
    return int(min(mem_mb, max_mem_mb(settings)))


def _runtime(settings, base, kind):
    growth = 1.0 if kind in RESUMABLE_KINDS else settings["runtime_growth"]
    return lambda wildcards, attempt: _grown(base, growth, settings["max_runtime"], attempt)


def _mem(settings, base):
    return lambda wildcards, attempt: _grown(base, settings["mem_growth"], max_mem_mb(settings), attempt)


def rule_resources(config: dict, kind: str) -> dict:
    """resources: for a rule of this kind, as a dict to unpack with **."""
    settings, spec = _kind(config, kind)
    gpu_job = kind in GPU_KINDS
    res = {"runtime": _runtime(settings, spec["runtime"], kind)}
    partition = settings["partitions"]["gpu" if gpu_job else "cpu"]
    if partition:
        res["slurm_partition"] = partition
    if settings["account"]:
        res["slurm_account"] = settings["account"]
    if settings["qos"]:
        res["qos"] = settings["qos"]
    if not gpu_job:
        res["mem_mb"] = _mem(settings, spec["mem_mb"])
        return res
    cpus_per_gpu = int(_cap(settings["cpus_per_gpu"], settings["max_threads"]))
    model = settings["gpu_model"]
    if kind == "train_lora":
        nodes, per_node = train_layout(config)
        res["mem_mb"] = _mem(settings, settings["mem_mb_per_gpu"] * per_node)  # per node
        if nodes * per_node > 1:
            res.update(_early_warning(settings))
            # The batch script runs the rule's command once; the command starts
            # one rank per GPU with srun (see rank_launcher). The plugin then
            # neither wraps the command in srun nor sets --gpus itself.
            res["mpi"] = "srun"
            res["nodes"] = nodes
            res["tasks_per_node"] = per_node
            res["gres"] = f"gpu:{model}:{per_node}" if model else f"gpu:{per_node}"
            # cpus per task = per rank; an explicit cpus_per_task overrides cpus_per_gpu.
            res["cpus_per_task"] = cpus_per_gpu
            return res
        gpus = 1
    else:
        gpus = spec["gpus"]
        # Host memory follows the GPU count unless the kind names its own (search reads whole shards).
        res["mem_mb"] = _mem(settings, spec["mem_mb"] if "mem_mb" in spec else settings["mem_mb_per_gpu"] * gpus)
    res["gpu"] = gpus
    if model:
        res["gpu_model"] = model
    res["cpus_per_gpu"] = cpus_per_gpu  # no cpus_per_task here: it would win
    return res


def _early_warning(settings: dict) -> dict:
    """slurm_extra asking Slurm for SIGUSR1 ``preemption_warning_s`` before the time limit.

    Without ``B:``: Slurm signals the job's steps, i.e. the srun that runs the ranks (each checkpoints
    and exits 75, train/preemption.py), and not the batch shell, which USR1 would kill (sh has no trap).
    Multi-rank jobs only: a one-rank job runs in the job-step plugin's own ``srun -n1`` step beside
    Snakemake's job-step process, which USR1 would kill as well (docs/slurm.md).
    """
    seconds = settings["preemption_warning_s"]
    return {} if seconds is None else {"slurm_extra": f"--signal=USR1@{int(seconds)}"}


def rank_launcher(config: dict) -> str:
    """Shell prefix that starts the training ranks: srun when several ranks.

    With one rank the Slurm job step (or the local process) is the rank. Rank
    info comes from Slurm's environment (SLURM_PROCID, SLURM_NTASKS, ...);
    submitit.helpers.TorchDistributedEnvironment().export() turns it into
    RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT. That helper
    only trusts the environment when SUBMITIT_EXECUTOR=slurm (set here for
    several ranks; a single-rank job should setdefault it when SLURM_PROCID
    is present).
    """
    nodes, per_node = train_layout(config)
    if nodes * per_node == 1:
        return ""
    settings = slurm_settings(config)
    model = settings["gpu_model"]
    # Geometry spelled out: the plugin's job step strips the batch script's SLURM_* variables (task
    # counts included) before running the rule, and since Slurm 22.05 srun does not inherit the job's
    # --cpus-per-task: without -c the ranks of a node would share one CPU each. GPUs: every rank sees
    # all GPUs of the step (srun binds none without --gpus-per-task) and takes cuda:LOCAL_RANK (train/rank.py).
    return (
        f"srun --kill-on-bad-exit=1 --cpu-bind=none --export=ALL,SUBMITIT_EXECUTOR=slurm "
        f"--nodes={nodes} --ntasks-per-node={per_node} --ntasks={nodes * per_node} "
        f"--cpus-per-task={rule_threads(config, 'train_lora')} "
        f"--gres=gpu:{model + ':' if model else ''}{per_node}"
    )
