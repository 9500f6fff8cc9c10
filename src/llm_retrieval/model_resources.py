"""Model sizes and what they mean for the jobs: GPUs, memory and runtime from the parameter count.

The size axis (config/scaling.yaml: Qwen2.5 0.5B-14B) needs no hand-set resources per
model. The parameter count comes, in this order, from

1. the resolved model's ``config.json`` (once ``resolve_backbone`` has run: the
   record ``results/models/<backbone>/backbone.json`` names the folder), or the
   count a built demo model recorded;
2. the published shape in ``resources/reference/backbone_configs.json`` (offline);

and the per-kind values in ``cluster.SLURM_DEFAULTS`` (sized for the paper's 7B
models) are scaled by it: runtime in proportion to the matmul parameters (compute per
token is 2N), host memory to hold the bf16 weights, and the GPU count of an encoding
job to fit them (one process per GPU holds a whole model). A model that does not fit
is a named error that says which setting to change.
"""

from __future__ import annotations

import json
import math
from functools import lru_cache
from pathlib import Path

REFERENCE = Path(__file__).resolve().parents[2] / "resources" / "reference" / "backbone_configs.json"
INSTRUCT_SUFFIX = "-Instruct"
REFERENCE_MODEL = "Qwen/Qwen2.5-7B"  # the size SLURM_DEFAULTS' runtimes are meant for
BYTES_PER_PARAM = 2  # bf16 weights on GPU
MIN_RUNTIME_FRACTION = 0.1  # small models still pay start-up and I/O
SIZED_KINDS = ("encode_queries_and_first_shard", "encode_corpus_shard", "train_lora")


class SizingError(ValueError):
    """A backbone too large for the configured GPUs; says which setting to change."""


@lru_cache(maxsize=1)
def _reference() -> dict:
    if not REFERENCE.is_file():
        return {}
    return json.loads(REFERENCE.read_text(encoding="utf-8"))["models"]


def known_shape(hub_id: str) -> dict | None:
    """Published shape of a hub model; an -Instruct variant shares its base's shape."""
    models = _reference()
    if hub_id in models:
        return models[hub_id]
    if hub_id.endswith(INSTRUCT_SUFFIX) and hub_id[: -len(INSTRUCT_SUFFIX)] in models:
        return models[hub_id[: -len(INSTRUCT_SUFFIX)]]
    return None


def decoder_parameters(shape: dict) -> tuple[int, int]:
    """(matmul body without token embedding, token embedding) of a Qwen2-style decoder config."""
    shape = shape.get("text_config") or shape
    h, inter, layers = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv_dim = shape.get("num_key_value_heads", shape["num_attention_heads"]) * (h // shape["num_attention_heads"])
    attention = (h * h + h) + 2 * (h * kv_dim + kv_dim) + h * h  # q, k, v with bias; o without
    per_layer = attention + 3 * h * inter + 2 * h  # SwiGLU MLP, two RMSNorms
    return layers * per_layer + h, shape["vocab_size"] * h


def sizes(spec: dict, record_path: str | Path | None = None) -> tuple[int, int] | None:
    """(matmul body, token embedding) parameters of a backbone, or None when nothing says."""
    if record_path is not None and Path(record_path).is_file():
        record = json.loads(Path(record_path).read_text(encoding="utf-8"))
        if record.get("parameters"):  # a built model counted itself
            return int(record["parameters"]), 0
        config = Path(record.get("path", "")) / "config.json"
        if config.is_file():
            try:
                return decoder_parameters(json.loads(config.read_text(encoding="utf-8")))
            except KeyError:
                pass  # not a decoder layout this formula knows
    shape = known_shape(spec.get("hub_id", ""))
    if shape:
        return int(shape["params_encoder"]), int(shape["params_embedding"])
    return None


def parameters(spec: dict, record_path: str | Path | None = None) -> int | None:
    """Total parameters (what memory holds), or None when nothing says."""
    found = sizes(spec, record_path)
    return None if found is None else sum(found)


def scale(spec: dict, record_path: str | Path | None = None) -> float | None:
    """Compute per token (2N, N = matmul body) relative to the 7B the defaults are sized for."""
    found = sizes(spec, record_path)
    ref = known_shape(REFERENCE_MODEL)
    if found is None or ref is None:
        return None
    return found[0] / ref["params_encoder"]


def encode_gpus(n_params: int, gpu_memory_mb: int, backbone: str) -> int:
    """GPUs one encoding process needs for its weights (+20% for activations); 1 when it fits."""
    need_mb = n_params * BYTES_PER_PARAM * 1.2 / 2**20
    if need_mb <= gpu_memory_mb:
        return 1
    raise SizingError(
        f"backbone {backbone!r}: {n_params / 1e9:.1f}B parameters need about {need_mb / 1024:.0f} GiB of GPU memory "
        f"for encoding, more than one GPU (slurm.gpu_memory_mb={gpu_memory_mb}); encoding runs one whole model "
        f"per GPU: use GPUs with more memory (slurm.gpu_model, slurm.gpu_memory_mb) or a smaller backbone"
    )


def sized_resources(config: dict, kind: str, resources: dict, record_of) -> dict:
    """``resources`` (cluster.rule_resources) with runtime / memory / GPUs following the backbone's size.

    ``record_of(backbone)`` is the path of its backbone.json record (read when it exists).
    """
    if kind not in SIZED_KINDS:
        return resources
    from .cluster import capped_mem, capped_runtime, slurm_settings

    settings = slurm_settings(config)
    base_runtime, base_mem = resources["runtime"], resources.get("mem_mb")
    out = dict(resources)

    def size_of(wildcards, measure):
        """``measure(backbone config, record path)``, or None for a job without a study backbone."""
        backbone = getattr(wildcards, "backbone", None)
        if backbone not in config.get("backbones", {}):
            return None
        return measure(config["backbones"][backbone], record_of(backbone))

    def factor(wildcards) -> float | None:
        return size_of(wildcards, scale)

    def runtime(wildcards, attempt):
        f = factor(wildcards)
        minutes = base_runtime(wildcards, attempt)
        sized = minutes if f is None else max(1, math.ceil(minutes * max(f, MIN_RUNTIME_FRACTION)))
        return capped_runtime(settings, sized)  # the partition's limit holds for a larger model too

    def mem_mb(wildcards, attempt):
        n = size_of(wildcards, parameters)
        base = base_mem(wildcards, attempt)
        if n is None:
            return base
        ranks_here = 1 if kind != "train_lora" else min(config["training"]["world_size"], settings["gpus_per_node"])
        # Host memory: each process on the node reads the bf16 weights once (+50% for loading).
        return capped_mem(settings, max(base, math.ceil(ranks_here * n * BYTES_PER_PARAM * 1.5 / 2**20)))

    out["runtime"] = runtime
    if base_mem is not None:
        out["mem_mb"] = mem_mb
    if kind != "train_lora" and "gpu" in out:

        def gpus(wildcards, attempt):
            n = size_of(wildcards, parameters)
            return (
                resources["gpu"]
                if n is None
                else max(resources["gpu"], encode_gpus(n, settings["gpu_memory_mb"], wildcards.backbone))
            )

        out["gpu"] = gpus
    return out


def check_fits(config: dict) -> None:
    """At DAG build: every backbone of the settings fits the GPUs (raises SizingError naming it)."""
    from .cluster import slurm_settings

    memory = slurm_settings(config)["gpu_memory_mb"]
    for setting in (config.get("settings") or {}).values():
        for backbone in setting["backbones"]:
            n = parameters(config["backbones"][backbone])
            if n is not None:
                encode_gpus(n, memory, backbone)
