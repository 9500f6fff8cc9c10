"""Encoding throughput and MFU of a Qwen2.5-7B-shaped model on one GPU (random weights, no download).

    python benchmarks/encode_gpu_7b.py [--texts 4096] [--batch-tokens 65536] [--no-load]
    python benchmarks/encode_gpu_7b.py --smoke        # CPU-sized path: a tiny config, fp32, on the CPU

Builds Qwen2Model from the exact Qwen2.5-7B config values (written below, as in
../shared/reference/backbone_configs.json) directly on the GPU in bf16, attention SDPA (flash-attention 2
when installed), and encodes a BEIR-like length mix (document lengths drawn per the study's collection
sizes, resources/collection_sizes.tsv, truncated at 512 text tokens, plus the 58-token PromptReps
template) through the study's encoder: token-budget batches, longest first, the template prefix computed
once, pinned asynchronous copies. Prints, old (fixed 64-row batches, no shared prefix) vs new side by side:
tokens/s, MFU = 2 x N x real tokens/s / 989e12 (N = 6.53e9 matmul parameters without the token embedding,
H100 dense bf16 peak; the forward pass only, no LM head), and the model load time (save once, then load
through load_text_model with device_map, as the jobs do).

Without CUDA (and without --smoke) it stops with a message and exit status 2. Not run for the docs:
no GPU was lent to this project's sessions so far; the README states no GPU figures.
"""

import argparse
import math
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llm_retrieval.corpus_sizes import SizeTable
from llm_retrieval.encoder import Encoder, EncoderSpec

PEAK = 989e12
QWEN25_7B = {
    "hidden_size": 3584,
    "intermediate_size": 18944,
    "num_hidden_layers": 28,
    "num_attention_heads": 28,
    "num_key_value_heads": 4,
    "vocab_size": 152064,
    "rms_norm_eps": 1e-6,
    "rope_theta": 1_000_000.0,
    "hidden_act": "silu",
    "max_position_embeddings": 131072,
    "tie_word_embeddings": False,
}
SMOKE = dict(
    QWEN25_7B,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    vocab_size=1000,
)
TEMPLATE, MAX_TEXT = 58, 512


def beir_like_lengths(n: int, seed: int = 0) -> list[int]:
    """Text lengths (Qwen tokens) of n documents drawn like the study's zero-shot corpora: a collection
    chosen in proportion to its documents, a length log-normal around its mean, truncated at 512."""
    table = SizeTable()
    rows = [r for k, r in table.rows.items() if k.startswith("beir:")]
    weights = [int(r["documents"]) for r in rows]
    rng = random.Random(seed)
    lengths = []
    for row in rng.choices(rows, weights, k=n):
        mean = float(row["mean_words"]) * table.ratios[row["kind"]]
        lengths.append(max(1, min(MAX_TEXT, round(rng.lognormvariate(math.log(mean) - 0.18, 0.6)))))
    return lengths


class StubTokenizer:
    pad_token_id = 0


def encoder_for(model, device: str, batch_tokens: int, share_prefix: bool, prefix: list[int]) -> Encoder:
    """The study's Encoder around an already built model (no tokenizer: token ids are given)."""
    encoder = Encoder.__new__(Encoder)
    encoder.spec = EncoderSpec(
        {"path": "random", "architecture": "qwen2"},
        {
            "normalize": True,
            "dtype": "bfloat16",
            "batch_tokens": batch_tokens,
            "share_prefix": share_prefix,
            "max_text_tokens": {"passage": MAX_TEXT},
        },
    )
    encoder.device, encoder.model, encoder.tokenizer = device, model, StubTokenizer()
    encoder.shared_prefix = lambda kind: prefix if share_prefix else []
    return encoder


def timed(fn, device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    start = time.perf_counter()
    out = fn()
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return time.perf_counter() - start, out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--texts", type=int, default=4096)
    parser.add_argument("--batch-tokens", type=int, default=65536)
    parser.add_argument("--old-batch", type=int, default=64, help="rows per batch of the old encoder")
    parser.add_argument("--no-load", action="store_true", help="skip the save + load timing (15 GB on disk)")
    parser.add_argument("--smoke", action="store_true", help="tiny config on the CPU: checks the script runs")
    args = parser.parse_args(argv)
    if not args.smoke and not torch.cuda.is_available():
        print("encode_gpu_7b: no CUDA device here; run it on a GPU node (or --smoke for the CPU-sized path)")
        sys.exit(2)
    from transformers import Qwen2Config, Qwen2Model

    from llm_retrieval.modeling import attention_implementation, load_text_model

    device = "cpu" if args.smoke else "cuda:0"
    shape = SMOKE if args.smoke else QWEN25_7B
    dtype = torch.float32 if args.smoke else torch.bfloat16
    n_texts = min(args.texts, 32) if args.smoke else args.texts  # smoke: one old batch, 8 warm-up texts
    config = Qwen2Config(
        **shape, attn_implementation=attention_implementation(device, str(dtype).removeprefix("torch."))
    )
    h, kv = shape["hidden_size"], shape["hidden_size"] // shape["num_attention_heads"] * shape["num_key_value_heads"]
    params = shape["num_hidden_layers"] * (2 * h * h + 2 * h * kv + 3 * h * shape["intermediate_size"])  # 6.53e9
    torch.manual_seed(0)
    start = time.perf_counter()
    with torch.device(device):
        default = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        model = Qwen2Model(config).eval()
        torch.set_default_dtype(default)
    build_s = time.perf_counter() - start
    name = torch.cuda.get_device_name(0) if device.startswith("cuda") else "CPU (smoke)"
    print(
        f"device: {name}; model: Qwen2.5-7B shape{' (SMOKE: tiny)' if args.smoke else ''}, "
        f"{params / 1e9:.2f} G matmul params, {dtype}, attention {config._attn_implementation}; "
        f"built on the device in {build_s:.1f} s"
    )

    rng = random.Random(1)
    prefix = [rng.randrange(1, shape["vocab_size"]) for _ in range(TEMPLATE - 9)]  # user turn opening
    suffix = [rng.randrange(1, shape["vocab_size"]) for _ in range(9)]  # closing + prefill
    ids = [
        prefix + [rng.randrange(1, shape["vocab_size"]) for _ in range(n)] + suffix for n in beir_like_lengths(n_texts)
    ]
    real = sum(map(len, ids))
    rows = []
    by_length = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    fixed = [by_length[k : k + args.old_batch] for k in range(0, len(ids), args.old_batch)]
    for label, batches, share in (("old: 64 rows, full", fixed, False), ("new: tokens, prefix", None, True)):
        encoder = encoder_for(model, device, args.batch_tokens, share, prefix)
        warm = ids[: max(8, n_texts // 16)]
        encoder.run(encoder.prepare_ids("passage", warm))
        seconds, _ = timed(lambda enc=encoder, b=batches: enc.run(enc.prepare_ids("passage", ids, b)), device)
        tok_s = real / seconds
        rows.append((label, seconds, tok_s, 2 * params * tok_s / PEAK))
        print(
            f"{label:<22} {n_texts} texts, {real:,} real tokens: {seconds:.2f} s, {tok_s:,.0f} tokens/s, "
            f"MFU {rows[-1][3]:.1%}"
        )
    print(f"ratio new/old: {rows[1][2] / rows[0][2]:.2f}x tokens/s")
    if not args.no_load:
        with tempfile.TemporaryDirectory() as tmp:
            model.save_pretrained(tmp)
            del model
            if device.startswith("cuda"):
                torch.cuda.empty_cache()
            seconds, _ = timed(
                lambda: load_text_model(tmp, "qwen2", "float32" if args.smoke else "bfloat16", device), device
            )
            print(f"model load (safetensors -> {device}, device_map): {seconds:.1f} s")


if __name__ == "__main__":
    main()
