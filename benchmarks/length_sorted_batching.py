"""Length-sorted vs arrival-order batching, side by side in one run (tiny Qwen2, CPU).

    python benchmarks/length_sorted_batching.py [--docs 2000] [--batch-size 32]

Prints the wall time and the padded-token count of both orders and their ratios. The texts are
the stdlib code-search documents, whose lengths vary a lot, as real corpora's do.
"""

import argparse
import tempfile
import time

import torch

from llm_retrieval.backbones import resolve_backbone
from llm_retrieval.data.demo import stdlib_pairs
from llm_retrieval.encoder import Encoder, EncoderSpec

PROMPTS = {
    "query": 'Query: "{text}".',
    "passage": 'Passage: "{text}". Use one word to represent the passage.',
    "assistant_prefill": 'The word is: "',
}


def run(encoder: Encoder, ids: list[list[int]], order: list[int], batch_size: int) -> tuple[float, int]:
    start, padded = time.perf_counter(), 0
    with torch.inference_mode():
        for i in range(0, len(order), batch_size):
            batch = [ids[j] for j in order[i : i + batch_size]]
            padded += max(map(len, batch)) * len(batch)
            encoder.forward_ids(batch)
    return time.perf_counter() - start, padded


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        build = {
            "seed": 0,
            "hidden_size": 128,
            "intermediate_size": 256,
            "num_hidden_layers": 4,
            "num_attention_heads": 4,
            "num_key_value_heads": 2,
            "vocab_size": 4000,
        }
        record = resolve_backbone({"architecture": "qwen2", "build": build}, f"{tmp}/model", f"{tmp}/backbone.json")
        encoding = {
            "prompts": PROMPTS,
            "normalize": True,
            "dtype": "float32",
            "batch_tokens": 1 << 20,
            "max_text_tokens": {"query": 64, "passage": 512},
        }
        encoder = Encoder(EncoderSpec(record, encoding), "cpu")
        texts = [p["code"] for _, p in zip(range(args.docs), stdlib_pairs())]
        ids = encoder.formatter.token_ids("passage", texts, 512)
        arrival = list(range(len(ids)))
        by_length = sorted(arrival, key=lambda i: -len(ids[i]))
        run(encoder, ids, arrival[: args.batch_size * 2], args.batch_size)  # warm-up
        t_arrival, p_arrival = run(encoder, ids, arrival, args.batch_size)
        t_sorted, p_sorted = run(encoder, ids, by_length, args.batch_size)
        real = sum(map(len, ids))
        print(f"{len(ids)} documents, {real} real tokens, batch size {args.batch_size}")
        print(f"arrival order : {t_arrival:7.2f} s, {p_arrival} tokens with padding")
        print(f"length-sorted : {t_sorted:7.2f} s, {p_sorted} tokens with padding")
        print(f"ratio arrival/sorted: time {t_arrival / t_sorted:.2f}x, padded tokens {p_arrival / p_sorted:.2f}x")


if __name__ == "__main__":
    main()
