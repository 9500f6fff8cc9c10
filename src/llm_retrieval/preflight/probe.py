"""What one job of a GPU kind sees, and whether its GPUs hold what the plan puts on them.

:func:`plan_needs` runs on the head at DAG build (it reads the config and the collections' size
estimates); :func:`probe` runs inside one job of each GPU kind and compares.
"""

from __future__ import annotations

import os
import socket
from types import SimpleNamespace

from . import Check, failed, passed, skipped

GIB = 2**30
BF16 = 2
NO_GPU_ADVICE = (
    "this job got no usable GPU: check slurm.partitions.gpu and slurm.gpu_model (the job asks "
    "sbatch --gpus=<gpu_model>:<n>), and that the nodes' driver matches torch's CUDA build"
)
CPU_CLUSTER = "preflight.expect_gpu is false (a CPU-only cluster, as the CI Slurm): GPU checks do not apply"


def _dims(spec: dict):
    """ModelDims of a backbone from its published shape or its build spec; None when neither says."""
    from ..model_resources import known_shape
    from ..train.memory import ModelDims

    shape = known_shape(spec.get("hub_id", "")) or spec.get("build")
    if not shape:
        return None
    shape = shape.get("text_config") or shape
    if "vocab_size" not in shape:
        return None
    return ModelDims.from_config(SimpleNamespace(**shape))


def _study_backbones(config: dict) -> list[str]:
    return sorted({b for s in config["settings"].values() for b in s["backbones"] if b in config["backbones"]})


def _trained_backbones(config: dict) -> list[str]:
    return sorted(b for b in config["settings"].get("supervised", {}).get("backbones", []) if b in config["backbones"])


def plan_needs(config: dict) -> dict[str, dict]:
    """Per GPU kind, what the plan puts on one GPU (bytes) and in words; computed from the config."""
    from ..corpus_sizes import SizeTable
    from ..train.memory import micro_step_tokens, use_checkpointing

    dims = {b: _dims(config["backbones"][b]) for b in _study_backbones(config)}
    known = {b: d for b, d in dims.items() if d is not None}
    needs: dict[str, dict] = {}
    if not known:
        return needs
    widest = max(known, key=lambda b: known[b].all_params)
    d = known[widest]
    collections = sorted({c for s in config["settings"].values() for c in s["collections"]})
    table = SizeTable()
    rows = {c: table.mean_tokens(c, config["collections"][c])[0] for c in collections}
    largest = max(rows, key=rows.get)
    needs["search"] = {
        "rows": rows[largest],
        "dim": max(x.hidden for x in known.values()),
        "what": f"{largest}: {rows[largest]:,} fp16 vectors",
    }
    batch = config["encoding"]["batch_tokens"]
    activations = batch * (4 * d.hidden + 2 * d.intermediate) * BF16  # one layer's live bf16 activations
    encode = d.all_params * BF16 + activations
    needs["encode_queries_and_first_shard"] = needs["encode_corpus_shard"] = {
        "bytes": encode,
        "what": f"{widest}: bf16 weights {d.all_params * BF16 / GIB:.1f} GiB + a "
        f"{batch}-token batch's activations {activations / GIB:.1f} GiB (estimate)",
    }
    trained = [b for b in _trained_backbones(config) if b in known]
    if trained and "training" in config:
        from ..cluster import slurm_settings
        from ..train.memory import zero_stage_for

        cfg, b = config["training"], max(trained, key=lambda x: known[x].all_params)
        gpu_bytes = slurm_settings(config)["gpu_memory_mb"] * 2**20
        # The stage the ranks will choose (auto: 2 where its estimate fits this GPU size, else 3).
        stage = zero_stage_for(cfg, known[b], cfg["world_size"], gpu_bytes) or 3
        _, estimate = use_checkpointing(
            cfg["gradient_checkpointing"], known[b], cfg, cfg["world_size"], stage, gpu_bytes
        )
        needs["train_lora"] = {
            "bytes": estimate.total,
            "what": f"{b}, ZeRO-{stage}, world {cfg['world_size']}, "
            f"{micro_step_tokens(cfg)} tokens per micro-step: "
            f"{estimate.describe()}",
        }
    return needs


def _gpus() -> list[tuple[str, int, int]]:
    """(name, free bytes, total bytes) of every GPU this job sees."""
    import torch

    if not torch.cuda.is_available():
        return []
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append((torch.cuda.get_device_name(i), free, total))
    return out


def probe(kind: str, config: dict, needs: dict, expect_gpu: bool) -> list[Check]:
    """The environment checks of one job of ``kind`` (one Check each)."""
    import torch

    host = socket.gethostname()
    gpus = _gpus()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES", "unset")
    checks = []
    if gpus:
        names = ", ".join(sorted({g[0] for g in gpus}))
        checks.append(passed(f"{kind}: GPUs", f"{len(gpus)} x {names} on {host} (CUDA_VISIBLE_DEVICES={visible})"))
    elif expect_gpu:
        checks.append(
            failed(
                f"{kind}: GPUs",
                f"none on {host} (CUDA_VISIBLE_DEVICES={visible}, torch {torch.__version__})",
                NO_GPU_ADVICE,
            )
        )
    else:
        checks.append(skipped(f"{kind}: GPUs", f"none on {host}; {CPU_CLUSTER}"))
    checks.append(_torch_build(kind, expect_gpu))
    if kind != "search":
        checks.append(_flash_attn(kind, config, bool(gpus), expect_gpu))
    checks.append(_search_backend(kind, config, bool(gpus), expect_gpu))
    checks.append(_memory(kind, needs.get(kind), gpus, config, expect_gpu))
    return checks


def _torch_build(kind: str, expect_gpu: bool) -> Check:
    import torch

    name = f"{kind}: torch CUDA build"
    if torch.version.cuda:
        return passed(name, f"torch {torch.__version__} built for CUDA {torch.version.cuda}")
    if expect_gpu:
        return failed(
            name,
            f"torch {torch.__version__} has no CUDA build",
            "install torch's CUDA wheel in the jobs' environment (README, cluster install lines)",
        )
    return skipped(name, f"torch {torch.__version__} (CPU build); {CPU_CLUSTER}")


def _flash_attn(kind: str, config: dict, on_gpu: bool, expect_gpu: bool) -> Check:
    from ..modeling import attention_implementation

    name = f"{kind}: flash-attn"
    dtype = config["encoding"]["dtype"] if kind != "train_lora" else "bfloat16"
    try:
        import flash_attn

        found = f"flash-attn {flash_attn.__version__}"
    except ImportError as err:
        found = f"flash-attn not importable ({err})"
    if not on_gpu:
        return skipped(
            name, f"{found}; no GPU in this job, attention sdpa" + ("" if expect_gpu else f"; {CPU_CLUSTER}")
        )
    chosen = attention_implementation("cuda", dtype)
    if chosen == "flash_attention_2":
        return passed(name, f"{found}; {dtype} on GPU uses flash_attention_2 (packed varlen path)")
    if "not importable" in found:
        return failed(
            name,
            f"{found}; attention falls back to sdpa",
            "pip install -r requirements-gpu.txt (flash-attn, the wheel for the pinned torch/CUDA)",
        )
    return passed(name, f"{found}; {dtype} uses {chosen} (flash-attn takes bf16/fp16 only)")


def _search_backend(kind: str, config: dict, on_gpu: bool, expect_gpu: bool) -> Check:
    import faiss

    from ..search import choose_backend

    name = f"{kind}: faiss and search backend"
    faiss_gpus = getattr(faiss, "get_num_gpus", lambda: 0)()
    requested = config["search"]["backend"]
    try:
        backend = choose_backend(requested)
    except ValueError as err:
        return failed(name, f"faiss {faiss.__version__} sees {faiss_gpus} GPU(s)", str(err))
    detail = f"faiss {faiss.__version__} sees {faiss_gpus} GPU(s); search.backend {requested} -> {backend}"
    if backend == "faiss-cpu" and on_gpu:
        return failed(name, detail, "a GPU job would search on the CPU: set search.backend: auto (or torch)")
    if backend == "faiss-cpu" and expect_gpu and kind == "search":
        return failed(name, detail, NO_GPU_ADVICE)
    return passed(name, detail)


MEMORY_ADVICE = {
    "encode_queries_and_first_shard": "lower encoding.batch_tokens, or use GPUs with more memory (slurm.gpu_model)",
    "encode_corpus_shard": "lower encoding.batch_tokens, or use GPUs with more memory (slurm.gpu_model)",
    "train_lora": "set training.gradient_checkpointing: true, training.zero_stage: 3, or lower "
    "training.per_device_batch (raise gradient_accumulation to keep the global batch)",
}


def _memory(kind: str, need: dict | None, gpus: list, config: dict, expect_gpu: bool) -> Check:
    from ..search import GpuMemoryError, gpu_memory_plan

    name = f"{kind}: free GPU memory vs the plan"
    if not gpus:
        return skipped(name, "no GPU in this job to measure" + ("" if expect_gpu else f"; {CPU_CLUSTER}"))
    if need is None:
        return skipped(name, "no backbone shape known before resolve_backbone runs (nothing to compare)")
    free = [g[1] for g in gpus]
    if kind == "search":
        try:
            used = gpu_memory_plan(need["rows"], need["dim"], free, need["what"])
        except GpuMemoryError as err:
            return failed(name, f"free {', '.join(f'{f / GIB:.1f}' for f in free)} GiB", str(err))
        return passed(
            name,
            f"{need['what']} x {need['dim']} fit on {used} of {len(free)} GPU(s) (free {min(free) / GIB:.1f} GiB each)",
        )
    detail = f"needs {need['bytes'] / GIB:.1f} GiB per GPU ({need['what']}); free {min(free) / GIB:.1f} GiB"
    if need["bytes"] > min(free):
        return failed(name, detail, MEMORY_ADVICE[kind])
    return passed(name, detail)
