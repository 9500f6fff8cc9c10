"""Training micro-steps, old vs new, side by side in one run (tiny Qwen2 + LoRA, CPU, one process).

    python benchmarks/train_cpu.py [--steps 6] [--accumulation 4] [--group 16]

old = what train/ did before issue 11: queries and passages as two padded forward passes.
new = one packed, padding-free forward pass per micro-step (train/packing.py).
Per optimizer step (``--accumulation`` micro-steps of 1 query x ``--group`` passages, the
protocol's micro-batch), for two length profiles:

- demo groups: the demo's stdlib code-search pairs (docstring sentence -> function code);
- MS MARCO-like: synthetic passages whose token lengths follow MS MARCO passages under a
  Qwen tokenizer (mean ~75, sd ~25, cut at the protocol's 156; queries ~12 tokens). No MS
  MARCO text ships with the repository; ``--groups`` takes a training-groups Parquet
  (TRAIN_GROUPS_SCHEMA, e.g. results/training_groups/default.parquet) to measure real ones.

Prints step time, computed / real tokens and forward passes per step for both, and the ratios.
On a tiny model on CPU the step time says little about a GPU; the token and pass counts
carry over unchanged.
"""

import argparse
import random
import tempfile
import time

import torch

from llm_retrieval.backbones import resolve_backbone
from llm_retrieval.data.demo import stdlib_pairs
from llm_retrieval.modeling import load_tokenizer
from llm_retrieval.train.loss import info_nce
from llm_retrieval.train.model import Batcher, trainable_retriever

LORA = {
    "rank": 8,
    "alpha": 16,
    "dropout": 0.0,
    "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
}
MAX_LENGTH = {"query": 32, "passage": 156}


def demo_groups(n: int, group: int) -> list[tuple[str, list[str]]]:
    pairs = [p for _, p in zip(range(n * group * 2), stdlib_pairs())]
    rng = random.Random(0)
    return [
        (pairs[i]["query"], [pairs[i]["code"]] + [p["code"] for p in rng.sample(pairs, group - 1)]) for i in range(n)
    ]


def marco_like_groups(n: int, group: int, words: list[str]) -> list[tuple[str, list[str]]]:
    rng = random.Random(0)
    text = lambda mean, sd, lo, hi: " ".join(rng.choices(words, k=int(min(hi, max(lo, rng.gauss(mean, sd))))))
    # One token per word (plus prefix and EOS): lengths in tokens.
    return [(text(10, 3, 3, 28), [text(72, 25, 15, 150) for _ in range(group)]) for _ in range(n)]


def groups_from_parquet(path: str, n: int, group: int) -> list[tuple[str, list[str]]]:
    from llm_retrieval.prompts import document_text
    from llm_retrieval.train.dataset import read_groups, sample_group

    return [
        (g.query, [document_text(p.title, p.text, True) for p in sample_group(g, group, 0, 0, i)])
        for i, g in enumerate(read_groups(path)[:n])
    ]


def run(model, batcher, groups, steps: int, accumulation: int, packed: bool) -> dict:
    passes, computed, real = [0], 0, 0
    hook = model.backbone.register_forward_hook(lambda *a: passes.__setitem__(0, passes[0] + 1))
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    times = []
    for step in range(steps + 1):  # the first step warms up and is not counted
        t0 = time.perf_counter()
        for micro in range(accumulation):
            query, passages = groups[(step * accumulation + micro) % len(groups)]
            if packed:
                batch = batcher.packed([query], passages)
                q, p = model(batch)
                computed += batch.input_ids.numel()
                real += batch.real_tokens
            else:
                q_ids, q_mask = batcher.tensors("query", [query])
                p_ids, p_mask = batcher.tensors("passage", passages)
                q, p = model.embed(q_ids, q_mask), model.embed(p_ids, p_mask)  # the old two passes
                computed += q_ids.numel() + p_ids.numel()
                real += int(q_mask.sum() + p_mask.sum())
            (info_nce(q, p, 0.05, gather=False) / accumulation).backward()
        optimizer.step()
        optimizer.zero_grad()
        if step == 0:
            passes[0], computed, real = 0, 0, 0
        else:
            times.append(time.perf_counter() - t0)
    hook.remove()
    return {"step_s": sum(times) / len(times), "ratio": computed / real, "passes": passes[0] / steps}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--accumulation", type=int, default=4)
    parser.add_argument("--group", type=int, default=16)
    parser.add_argument("--groups", help="training-groups Parquet to measure instead of the MS MARCO-like sample")
    args = parser.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
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
        tokenizer = load_tokenizer(record["path"])
        batcher = Batcher(tokenizer, MAX_LENGTH)
        model = trainable_retriever(record["path"], "qwen2", LORA)
        n = args.accumulation * (args.steps + 1)
        # Words that are one token each (with their leading space), so word counts are token counts.
        words = [
            w
            for w in sorted(tokenizer.get_vocab())
            if w.isalpha() and len(w) > 2 and len(tokenizer(" " + w, add_special_tokens=False)["input_ids"]) == 1
        ][:500]
        profiles = {"demo groups": demo_groups(n, args.group)}
        if args.groups:
            profiles["real groups"] = groups_from_parquet(args.groups, n, args.group)
        else:
            profiles["MS MARCO-like"] = marco_like_groups(n, args.group, words)
        print(
            f"tiny Qwen2 (hidden 128, 4 layers) + LoRA r=8, CPU, {torch.get_num_threads()} threads; "
            f"per step {args.accumulation} micro-steps x (1 query + {args.group} passages), {args.steps} steps"
        )
        print(f"{'profile':<15} {'':<4} {'step s':>8} {'computed/real':>14} {'passes/step':>12}")
        for name, groups in profiles.items():
            old = run(model, batcher, groups, args.steps, args.accumulation, packed=False)
            new = run(model, batcher, groups, args.steps, args.accumulation, packed=True)
            for label, r in (("old", old), ("new", new)):
                print(f"{name:<15} {label:<4} {r['step_s']:8.3f} {r['ratio']:14.2f} {r['passes']:12.1f}")
            print(
                f"{name:<15} old/new: step time {old['step_s'] / new['step_s']:.2f}x, computed tokens "
                f"{old['ratio'] / new['ratio']:.2f}x, forward passes {old['passes'] / new['passes']:.1f}x"
            )


if __name__ == "__main__":
    main()
