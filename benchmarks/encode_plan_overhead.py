"""Model loads and model-load overhead of the paper study's encoding plan, old vs new, side by side.

    python benchmarks/encode_plan_overhead.py [--config config/config.yaml] [--load-s 25] [--mfu 0.5]

Reads the plan from the Study object (the same functions the workflow's input functions call, so the
counts equal `snakemake -n`'s encode jobs) and prints, for the old plan (a fixed 8 shards per corpus
plus one query job: every job loads the model) and the new one (shards by estimated tokens, queries in
the first shard's job): model loads, encode GPU-hours and the overhead
loads x load time / (loads x load time + encoding time). Encoding time = estimated corpus tokens
(resources/collection_sizes.tsv x measured Qwen tokens/word, truncated as configured, template included;
queries left out, which overstates the overhead slightly) / throughput, throughput = MFU x 989e12 /
(2 x 6.53e9) tokens/s. Load time and MFU are ASSUMPTIONS printed with the result (no GPU here).
"""

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llm_retrieval.study import Study

PEAK, PARAMS = 989e12, 6.53e9  # H100 dense bf16; Qwen2.5-7B matmul parameters without the token embedding
OLD_SHARDS = 8


def load_config(path: Path) -> dict:
    from snakemake.utils import validate

    config = yaml.safe_load(Path(path).read_text())
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return config


def prefix_tokens() -> int:
    """Qwen2 tokens of the chat-template prefix before a passage's text (shared once per job when on)."""
    from llm_retrieval.corpus_sizes import QWEN2_5_TEMPLATE, qwen_encoding

    return len(qwen_encoding().encode(QWEN2_5_TEMPLATE.split("{user}")[0] + 'Passage: "', allowed_special="all"))


def plan(study: Study) -> dict:
    encodings = [
        (s, b, c) for s in ("zeroshot", "supervised") for b in study.backbones_of(s) for c in study.collections_of(s)
    ]
    tokens = sum(study.corpus_size(c, s)[1] for s, _, c in encodings)
    prefix = prefix_tokens()
    # The PromptReps prefix is shared in the zero-shot format only (one prefix per job, not per text).
    shared = sum(study.corpus_size(c)[0] * prefix for s, _, c in encodings if s == "zeroshot")
    return {
        "encodings": len(encodings),
        "tokens": tokens,
        "prefix": prefix,
        "shared": shared,
        "old_loads": len(encodings) * (1 + OLD_SHARDS),
        "new_loads": sum(study.corpus_shards(c, s) for s, _, c in encodings),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", type=Path, default=ROOT / "config/config.yaml")
    parser.add_argument("--load-s", type=float, default=25.0, help="ASSUMED seconds per 7B model load")
    parser.add_argument("--mfu", type=float, default=0.5, help="ASSUMED model FLOPs utilisation while encoding")
    parser.add_argument(
        "--old-load-s",
        type=float,
        default=45.0,
        help="ASSUMED seconds per load before (model built on the CPU, then copied to the GPU)",
    )
    args = parser.parse_args()
    study = Study(load_config(args.config))
    p = plan(study)
    tok_s = args.mfu * PEAK / (2 * PARAMS)
    encode_h = p["tokens"] / tok_s / 3600
    print(
        f"plan of {args.config.name}: {p['encodings']} encodings (backbone x setting x collection), "
        f"{p['tokens'] / 1e9:.2f} G corpus tokens estimated"
    )
    print(
        f"assumed: model load {args.load_s:.0f} s, {args.mfu:.0%} MFU = {tok_s:,.0f} tokens/s per GPU "
        f"(not measured: no GPU lent)"
    )
    print(f"{'plan':<28}{'model loads':>12}{'load GPU-h':>12}{'encode GPU-h':>14}{'overhead':>10}")
    rows = {}
    for name, loads in (("old: 8 shards + queries", p["old_loads"]), ("new: by tokens", p["new_loads"])):
        load_h = loads * args.load_s / 3600
        rows[name] = (loads, load_h / (load_h + encode_h))
        print(f"{name:<28}{loads:>12,}{load_h:>12.1f}{encode_h:>14.1f}{rows[name][1]:>10.1%}")
    (old_loads, old_over), (new_loads, new_over) = rows.values()
    print(f"ratio old/new: {old_loads / new_loads:.1f}x fewer model loads, overhead {old_over:.1%} -> {new_over:.1%}")
    # Whole encode cost, before vs after: loads at their assumed times + computed tokens / throughput.
    before_h = (p["old_loads"] * args.old_load_s + p["tokens"] / tok_s) / 3600
    after_tokens = p["tokens"] - p["shared"]
    after_h = (p["new_loads"] * args.load_s + after_tokens / tok_s) / 3600
    print(
        f"shared prefix: {p['prefix']} Qwen tokens per zero-shot text, {p['shared'] / p['tokens']:.1%} of the "
        f"study's encoded tokens computed once instead"
    )
    print(
        f"ESTIMATED encode GPU-hours of the study (assumed {args.old_load_s:.0f} s loads before, {args.load_s:.0f} s "
        f"after; {args.mfu:.0%} MFU both): before {before_h:.0f}, after {after_h:.0f} ({before_h / after_h:.2f}x)"
    )


if __name__ == "__main__":
    main()
