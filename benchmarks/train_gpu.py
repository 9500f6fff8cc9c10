"""One GPU, the protocol's LoRA micro-steps on a random-weight Qwen2.5-7B: ZeRO-3 (world size 1) vs plain.

    python benchmarks/train_gpu.py [--steps 20] [--warmup 5] [--queries 1 4]
    python benchmarks/train_gpu.py --smoke      # CPU-sized check of the code path (tiny model, no GPU)

The model is built from Qwen2.5-7B's exact config (/work/shared/reference/backbone_configs.json, or
``--config``) with random bf16 weights: no download. LoRA r=32 on all seven projections
(config/config.yaml), group 16, queries <= 32 and passages <= 156 tokens with MS MARCO-like lengths
(about 1.3K real tokens per query group), packed into one padding-free row per micro-step, one
forward pass (train/packing.py, train/model.py). For 1 and 4 queries per micro-step it prints,
side by side for plain PyTorch (AdamW on the LoRA weights) and DeepSpeed ZeRO-3 at world size 1
(the training engine's own config, model built partitioned via HfDeepSpeedConfig):

- step time (one micro-step = one optimizer step here), real tokens/s;
- MFU = useful FLOPs / (time x 989e12, H100/H200 dense bf16), useful FLOPs = 4N per real token
  (LoRA without recomputation: forward 2N + activation gradients 2N; no weight gradients of the
  frozen backbone) or 6N when gradient checkpointing is on (the recomputed forward counted, as the
  developers' guide asks), N = 6.53e9 matmul parameters without the token embedding; attention
  FLOPs not counted;
- peak GPU memory (allocated) and the process's peak host memory.

Without CUDA (and without ``--smoke``) it refuses with exit status 2.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import random
import resource
import socket
import sys
import time
from pathlib import Path

import torch

from llm_retrieval.train.engine import deepspeed_config, init_process_group
from llm_retrieval.train.loss import info_nce
from llm_retrieval.train.memory import GIB, ModelDims, use_checkpointing
from llm_retrieval.train.model import Retriever
from llm_retrieval.train.packing import pack

PEAK_FLOPS = 989e12
REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path("/work/shared/reference/backbone_configs.json")
LORA = {
    "rank": 32,
    "alpha": 64,
    "dropout": 0.1,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
GROUP = 16


def qwen_config(path: Path, name: str, smoke: bool):
    from transformers import Qwen2Config

    if smoke:
        return Qwen2Config(
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=2,
            num_attention_heads=4,
            num_key_value_heads=2,
            vocab_size=1000,
            max_position_embeddings=512,
        )
    shape = json.loads(path.read_text())["models"][name]
    keys = (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "num_key_value_heads",
        "vocab_size",
        "rms_norm_eps",
        "rope_theta",
        "max_position_embeddings",
        "tie_word_embeddings",
    )
    return Qwen2Config(**{k: shape[k] for k in keys if k in shape})


def micro_steps(n_queries: int, vocab: int, count: int, seed: int = 0):
    """Packed rows of ``n_queries`` x (query + 16 passages), MS MARCO-like token lengths."""
    rng = random.Random(seed)
    length = lambda mean, sd, lo, hi: int(min(hi, max(lo, rng.gauss(mean, sd))))
    seq = lambda n: [rng.randrange(10, vocab) for _ in range(n)]
    rows = []
    for _ in range(count):
        queries = [seq(length(14, 4, 5, 32)) for _ in range(n_queries)]
        passages = [seq(length(80, 30, 20, 156)) for _ in range(n_queries * GROUP)]
        rows.append(pack(queries, passages))
    return rows


def build_model(config, dtype, device, attention: str, checkpointing: bool):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModel

    config._attn_implementation = attention
    torch.manual_seed(0)
    backbone = AutoModel.from_config(config, dtype=dtype, attn_implementation=attention).to(device).train()
    if checkpointing:
        backbone.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    lora = LoraConfig(
        r=LORA["rank"],
        lora_alpha=LORA["alpha"],
        lora_dropout=LORA["dropout"],
        target_modules=LORA["target_modules"],
        bias="none",
    )
    return Retriever(get_peft_model(backbone, lora))


def measure(mode: str, config, n_queries: int, args, device, dtype, attention: str) -> dict:
    dims = ModelDims.from_config(config)
    training = {
        "per_device_batch": n_queries,
        "gradient_accumulation": 1,
        "global_batch": n_queries,
        "group_size": GROUP,
        "max_length": {"query": 32, "passage": 156},
        "lora": LORA,
        "learning_rate": 1e-4,
        "zero_stage": 3,
    }
    device_bytes = torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None
    checkpointing, estimate = use_checkpointing("auto", dims, training, 1, 3 if mode == "zero3" else 2, device_bytes)
    gc.collect()  # the previous configuration's model and optimizer
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    hf_ds = None
    if mode == "zero3":
        import deepspeed
        from transformers.integrations import HfDeepSpeedConfig

        ds_config = deepspeed_config(
            REPO / "config/deepspeed/zero3.json", training, 1, device.type == "cuda", dims.hidden
        )
        hf_ds = HfDeepSpeedConfig(ds_config)
        model = build_model(config, dtype, "cpu" if device.type != "cuda" else device, attention, checkpointing)
        engine, *_ = deepspeed.initialize(
            model=model, config=ds_config, model_parameters=[p for p in model.parameters() if p.requires_grad]
        )
        forward, backward, step = engine, engine.backward, engine.step
    else:
        model = build_model(config, dtype, device, attention, checkpointing)
        trainable = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(trainable, lr=1e-4)
        forward, backward = model, lambda loss: loss.backward()

        def step():
            torch.nn.utils.clip_grad_norm_(trainable, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)

    rows = [r.to(device) for r in micro_steps(n_queries, config.vocab_size, args.warmup + args.steps)]
    real, times = 0, []
    for i, row in enumerate(rows):
        if device.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        q, p = forward(row)
        loss = info_nce(q, p, 0.01, gather=False)
        backward(loss)
        step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
            real += row.real_tokens
    seconds = sum(times)
    flops_per_token = (6 if checkpointing else 4) * dims.body_params
    result = {
        "mode": mode,
        "queries": n_queries,
        "step_s": seconds / len(times),
        "tokens_per_s": real / seconds,
        "real_tokens_per_step": real / len(times),
        "checkpointing": checkpointing,
        "mfu": flops_per_token * real / (seconds * PEAK_FLOPS),
        "peak_gpu_gib": torch.cuda.max_memory_allocated(device) / GIB if device.type == "cuda" else float("nan"),
        "estimate_gib": estimate.total / GIB,
        "peak_host_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2,
    }
    del forward, model, hf_ds
    if mode == "zero3":
        del engine
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--queries", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--modes", nargs="+", default=["plain", "zero3"], choices=["plain", "zero3"])
    parser.add_argument("--config", type=Path, default=REFERENCE)
    parser.add_argument("--model", default="Qwen/Qwen2.5-7B")
    parser.add_argument("--smoke", action="store_true", help="tiny model on CPU: checks the code path only")
    args = parser.parse_args(argv)
    on_gpu = torch.cuda.is_available()
    if not on_gpu and not args.smoke:
        print(
            "train_gpu.py: no CUDA device; refusing (GPU figures are only measured on a GPU). "
            "--smoke runs the code path on a tiny CPU model.",
            file=sys.stderr,
        )
        return 2
    if args.smoke:  # the code path only, figures meaningless: the protocol's 1 query per micro-step (not also
        # 4: the same code with a longer row), 1 warm-up + 1 timed micro-step per mode (was 2 + 1)
        args.steps, args.warmup, args.queries = 1, 1, [1]
    device = torch.device("cuda", 0) if on_gpu and not args.smoke else torch.device("cpu")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.update(
        RANK="0",
        LOCAL_RANK="0",
        WORLD_SIZE="1",
        LOCAL_WORLD_SIZE="1",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=os.environ.get("MASTER_PORT", str(port)),
    )
    init_process_group(device.type == "cuda")
    config = qwen_config(args.config, args.model, args.smoke)
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    attention = "sdpa"
    if device.type == "cuda":
        try:
            import flash_attn  # noqa: F401

            attention = "flash_attention_2"
        except ImportError:
            pass
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (smoke: figures meaningless)"
    print(
        f"{name}; {'smoke model' if args.smoke else args.model} random weights, LoRA r={LORA['rank']}, group {GROUP}, "
        f"packed, attention {attention}; MFU vs {PEAK_FLOPS:.0e} FLOP/s, 4N (6N with checkpointing) per real token"
    )
    print(
        f"{'queries':>7} {'mode':>6} {'step s':>8} {'tokens/s':>9} {'MFU':>6} {'ckpt':>5} {'GPU GiB':>8} "
        f"{'est GiB':>8} {'host GiB':>8}"
    )
    for n in args.queries:
        results = {mode: measure(mode, config, n, args, device, dtype, attention) for mode in args.modes}
        for r in results.values():
            print(
                f"{r['queries']:>7} {r['mode']:>6} {r['step_s']:8.3f} {r['tokens_per_s']:9.0f} {r['mfu']:6.1%} "
                f"{'on' if r['checkpointing'] else 'off':>5} {r['peak_gpu_gib']:8.1f} {r['estimate_gib']:8.1f} "
                f"{r['peak_host_gib']:8.1f}"
            )
        if len(results) == 2:
            print(
                f"{n:>7} zero3/plain step time {results['zero3']['step_s'] / results['plain']['step_s']:.2f}x "
                f"({results['plain']['real_tokens_per_step']:.0f} real tokens per micro-step)"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
