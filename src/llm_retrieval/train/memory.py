"""Per-GPU memory estimate of a training micro-step, and the ``gradient_checkpointing: auto`` rule.

The rule (docs/training.md): checkpointing is on only when the estimate WITHOUT it exceeds
90 % of the GPU's memory. Recomputation turns a LoRA step's 4N FLOPs per token into 6N, so
it is paid only when the activations would not fit.

Estimate (bytes per GPU), for frozen bf16 weights with LoRA adapters:

- weights: all ``P`` backbone parameters x 2 bytes, divided by the world size under
  ZeRO-3, plus the gathered working set (``stage3_max_live_parameters``-bounded: about
  the prefetch bucket plus the layer in use) under ZeRO-3;
- LoRA state: fp32 master weights, gradients and two AdamW moments (16 bytes/param,
  partitioned over ranks under ZeRO-2/3) plus the bf16 copy (2 bytes/param);
- activations kept for the backward, per token and decoder layer, in elements of the
  compute dtype: ``9h + 2kv + 4i`` (RMSNorm inputs kept in fp32 count twice, the q/k/v
  outputs, the attention output, the two MLP inputs gate/up outputs, SiLU output and
  product), plus ``6h + i`` for LoRA dropout's copies of the inputs of the seven adapted
  projections when dropout > 0; with checkpointing only each layer's input (``h``)
  plus one layer recomputed at a time;
- workspace: 2 GiB (CUDA context, kernels, allocator) plus 10 % fragmentation.
"""

from __future__ import annotations

from dataclasses import dataclass

GIB = 1024**3
FIT_FRACTION = 0.9
WORKSPACE = 2 * GIB
LORA_TARGET_SHAPES = {  # (in, out) of each projection, by model dims
    "q_proj": lambda h, kv, i: (h, h),
    "k_proj": lambda h, kv, i: (h, kv),
    "v_proj": lambda h, kv, i: (h, kv),
    "o_proj": lambda h, kv, i: (h, h),
    "gate_proj": lambda h, kv, i: (h, i),
    "up_proj": lambda h, kv, i: (h, i),
    "down_proj": lambda h, kv, i: (i, h),
}


@dataclass(frozen=True)
class ModelDims:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    vocab: int

    @classmethod
    def from_config(cls, config) -> ModelDims:
        config = getattr(config, "text_config", None) or config  # Qwen2.5-VL: its language model
        # T5 names its MLP width d_ff
        intermediate = getattr(config, "intermediate_size", None) or config.d_ff
        return cls(
            config.hidden_size,
            intermediate,
            config.num_hidden_layers,
            config.num_attention_heads,
            getattr(config, "num_key_value_heads", None) or config.num_attention_heads,
            config.vocab_size,
        )

    @property
    def kv(self) -> int:
        return self.kv_heads * (self.hidden // self.heads)

    @property
    def body_params(self) -> int:
        """Matmul parameters without the token embedding (N in the FLOP convention)."""
        h, kv, i = self.hidden, self.kv, self.intermediate
        return self.layers * (2 * h * h + 2 * h * kv + 3 * h * i)

    @property
    def all_params(self) -> int:
        return self.body_params + self.vocab * self.hidden

    def lora_params(self, rank: int, targets) -> int:
        return self.layers * sum(
            rank * sum(LORA_TARGET_SHAPES[t](self.hidden, self.kv, self.intermediate))
            for t in targets
            if t in LORA_TARGET_SHAPES
        )

    def activation_elements_per_token(self, checkpointing: bool, lora_dropout: bool) -> int:
        h, kv, i = self.hidden, self.kv, self.intermediate
        per_layer = 9 * h + 2 * kv + 4 * i + ((6 * h + i) if lora_dropout else 0)
        if checkpointing:
            return self.layers * h + per_layer
        return self.layers * per_layer


@dataclass(frozen=True)
class MemoryEstimate:
    weights: int
    lora_state: int
    activations: int
    workspace: int
    device: int | None  # the GPU's memory, None on CPU

    @property
    def total(self) -> int:
        return int((self.weights + self.lora_state + self.activations) * 1.1) + self.workspace

    def fits(self) -> bool:
        return self.device is None or self.total <= FIT_FRACTION * self.device

    def describe(self) -> str:
        gib = lambda b: f"{b / GIB:.1f}"
        device = f" of {gib(self.device)} GiB" if self.device else ""
        return (
            f"{gib(self.total)} GiB{device} (weights {gib(self.weights)}, LoRA+AdamW {gib(self.lora_state)}, "
            f"activations {gib(self.activations)}, workspace+10% {gib(self.total - self.weights - self.lora_state - self.activations)})"
        )


def trained_lora(training: dict) -> dict | None:
    """The LoRA recipe, or None under ``training.method: full`` (every weight trained)."""
    return None if training.get("method") == "full" else training["lora"]


def estimate(
    dims: ModelDims,
    lora: dict,
    tokens: int,
    world: int,
    zero_stage: int,
    checkpointing: bool,
    dtype_bytes: int = 2,
    device_bytes: int | None = None,
) -> MemoryEstimate:
    """Per-GPU bytes for one micro-step of ``tokens`` computed tokens."""
    weights = dims.all_params * dtype_bytes
    if zero_stage == 3:
        h = dims.hidden
        live = int(25 * h * h) + dims.body_params // dims.layers  # prefetch bucket + the layer in use
        weights = weights // world + live * dtype_bytes
    # Trained parameters: the LoRA matrices, or (lora None: full fine-tuning) every weight.
    n_lora = dims.lora_params(lora["rank"], lora["target_modules"]) if lora else dims.all_params
    lora_state = n_lora * 16 // (world if zero_stage >= 2 else 1) + n_lora * dtype_bytes
    per_token = dims.activation_elements_per_token(checkpointing, bool(lora) and lora.get("dropout", 0) > 0)
    return MemoryEstimate(weights, lora_state, tokens * per_token * dtype_bytes, WORKSPACE, device_bytes)


def micro_step_tokens(training: dict) -> int:
    """Upper bound of the tokens one micro-step computes (every sequence at its length cap)."""
    cap = training["max_length"]
    return training["per_device_batch"] * (cap["query"] + training["group_size"] * cap["passage"])


def use_checkpointing(
    setting, dims: ModelDims, training: dict, world: int, zero_stage: int, device_bytes: int | None
) -> tuple[bool, MemoryEstimate]:
    """``gradient_checkpointing`` true/false as given; ``auto``: on only if the step would not fit without it.
    Returns the decision and the estimate for the chosen setting."""
    args = (dims, trained_lora(training), micro_step_tokens(training), world, zero_stage)
    without = estimate(*args, checkpointing=False, device_bytes=device_bytes)
    if setting == "auto":
        on = device_bytes is not None and not without.fits()
    else:
        on = bool(setting)
    return on, (estimate(*args, checkpointing=True, device_bytes=device_bytes) if on else without)


def zero_stage_for(training: dict, dims: ModelDims, world: int, device_bytes: int | None) -> int | None:
    """``training.zero_stage`` as given (2, 3, or None: the DeepSpeed template's); ``auto``: 2 where
    ZeRO-2's per-GPU estimate fits (gradient checkpointing as configured), else 3.

    With LoRA the backbone is frozen: stage 2 computes the same loss and gradients as stage 3 without
    gathering the weights twice per micro-step (docs/training.md). No GPU (``device_bytes`` None,
    the CPU tests): 2, there is no device memory to run out of.
    """
    stage = training.get("zero_stage")
    if stage != "auto":
        return stage
    if device_bytes is None:
        return 2
    _, memory = use_checkpointing(training["gradient_checkpointing"], dims, training, world, 2, device_bytes)
    return 2 if memory.fits() else 3
