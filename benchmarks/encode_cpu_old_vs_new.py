"""Today's encoder vs the previous one on the demo corpora, side by side in one run (tiny Qwen2, CPU).

    python benchmarks/encode_cpu_old_vs_new.py [--docs 1000] [--old-batch 32]

old: fixed-count batches (encoding.batch_size, the demo's 32), longest first, every token of every text
     computed (what src/llm_retrieval/encode.py did before issue 10).
new: token-budget batches (encoding.batch_tokens, the demo's 4096), longest first, the chat-template
     prefix computed once (encoding.share_prefix).
Per demo collection (the documents its corpus holds, first --docs of them): wall time, padded / real
tokens, tokens computed, and the fraction of tokens the shared prefix saves. Times: the fastest of
--repeats alternating runs (a shared machine's load hits both alike). Model: the demo config's
`base` backbone (tiny random-weight Qwen2, built here), fp32, on this CPU.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from llm_retrieval.backbones import resolve_backbone
from llm_retrieval.data.beir import iter_beir_corpus
from llm_retrieval.data.demo import build_synthetic_beir, stdlib_pairs
from llm_retrieval.encoder import Encoder, EncoderSpec


def demo_corpora(n: int, tmp: str) -> dict[str, list[str]]:
    pairs = list(stdlib_pairs())
    build_synthetic_beir(Path(tmp) / "synth")
    synth = [d["text"] for d in iter_beir_corpus(Path(tmp) / "synth" / "corpus.jsonl")]
    return {
        "stdlib-t2c (code)": [p["code"] for p in pairs][:n],
        "stdlib-c2t (sentences)": [p["query"] for p in pairs][:n],
        "synth-text": synth[:n],
    }


def run_old(encoder: Encoder, texts: list[str], batch: int) -> tuple[float, int, int]:
    start = time.perf_counter()
    ids = encoder.formatter.token_ids("passage", texts, encoder.text_budget["passage"])
    order = sorted(range(len(ids)), key=lambda i: -len(ids[i]))
    computed = 0
    for k in range(0, len(order), batch):
        rows = [ids[i] for i in order[k : k + batch]]
        computed += len(rows) * max(map(len, rows))
        encoder.forward_ids(rows)
    return time.perf_counter() - start, sum(map(len, ids)), computed


def run_new(encoder: Encoder, texts: list[str]):
    start = time.perf_counter()
    with torch.inference_mode():
        prepared = encoder.prepare("passage", texts)
        encoder.run(prepared)
    return time.perf_counter() - start, prepared


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--old-batch", type=int, default=32)
    parser.add_argument("--repeats", type=int, default=3, help="old and new alternate; the fastest run of each counts")
    args = parser.parse_args()
    torch.manual_seed(0)
    from snakemake.utils import validate

    demo = yaml.safe_load(Path(ROOT / "config/demo.yaml").read_text())
    validate(demo, str(ROOT / "workflow/schemas/config.schema.yaml"))  # fills the defaults
    encoding = {**demo["encoding"], "max_text_tokens": {"query": 64, "passage": 192}}
    with tempfile.TemporaryDirectory() as tmp:
        record = resolve_backbone(demo["backbones"]["base"], f"{tmp}/model", f"{tmp}/backbone.json")
        old = Encoder(EncoderSpec(record, {**encoding, "share_prefix": False}), "cpu")
        new = Encoder(EncoderSpec(record, {**encoding, "share_prefix": True}), "cpu")
        corpora = demo_corpora(args.docs, tmp)
        old.encode("passage", corpora["synth-text"][:64])  # warm-up
        print(
            f"tiny Qwen2 (demo `base`), CPU fp32, {torch.get_num_threads()} threads; old: {args.old_batch} rows "
            f"per batch; new: {encoding['batch_tokens']} tokens per batch + shared prefix"
        )
        print(
            f"{'collection':<24}{'docs':>6}{'old s':>8}{'new s':>8}{'speed-up':>9}{'pad/real old':>13}"
            f"{'new':>6}{'computed old':>13}{'new':>9}{'prefix saved':>13}"
        )
        for name, texts in corpora.items():
            olds, news = [], []
            for _ in range(args.repeats):  # alternating, so that load from other processes hits both alike
                olds.append(run_old(old, texts, args.old_batch))
                news.append(run_new(new, texts))
            t_old, real, computed_old = min(olds)
            t_new, prepared = min(news, key=lambda r: r[0])
            saved = len(prepared.prefix) * (prepared.count - 1) / real
            print(
                f"{name:<24}{len(texts):>6}{t_old:>8.2f}{t_new:>8.2f}{t_old / t_new:>8.2f}x"
                f"{computed_old / real:>13.3f}{prepared.padded_tokens / real:>6.3f}"
                f"{computed_old:>13,}{prepared.computed:>9,}{saved:>12.1%}"
            )


if __name__ == "__main__":
    main()
