"""Shared fixtures for tests/test_train_*.py: a tiny Qwen2 backbone and a synthetic retrieval task.

The task: each document carries rare tokens of its own among common filler words;
its query repeats two of them. A retriever that learns to match tokens finds the
document; an untrained random backbone mostly cannot. Held-out queries use
documents (and rare tokens) never seen in training, so only a general skill helps.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from transformers import Qwen2Config, Qwen2ForCausalLM

from llm_retrieval.atomic import write_parquet
from llm_retrieval.data.canonical import TRAIN_GROUPS_SCHEMA
from llm_retrieval.tiny_models import train_tokenizer

N_DOCS, N_TRAIN, RARE_PER_DOC = 160, 112, 4
COMMON = [
    "the",
    "of",
    "and",
    "to",
    "in",
    "is",
    "for",
    "on",
    "with",
    "as",
    "by",
    "at",
    "from",
    "this",
    "that",
    "be",
    "are",
    "or",
    "an",
    "it",
    "was",
    "which",
    "not",
    "but",
]


def _word(n: int) -> str:
    # Letters only: Qwen's pre-tokenizer splits digits one by one, which would blur the words.
    letters = ""
    for _ in range(3):
        n, r = divmod(n, 26)
        letters += chr(ord("a") + r)
    return "z" + letters


def synthetic_task(seed: int = 0) -> dict:
    rng = random.Random(seed)
    docs, queries = {}, {}
    for d in range(N_DOCS):
        rare = [_word(d * RARE_PER_DOC + k) for k in range(RARE_PER_DOC)]
        words = rare + rng.sample(COMMON, 8)
        rng.shuffle(words)
        docs[f"d{d}"] = " ".join(words)
        q = rng.sample(rare, 2) + rng.sample(COMMON, 3)
        rng.shuffle(q)
        queries[f"q{d}"] = " ".join(q)
    return {
        "docs": docs,
        "queries": queries,
        "train": [f"q{d}" for d in range(N_TRAIN)],
        "test": [f"q{d}" for d in range(N_TRAIN, N_DOCS)],
    }


def write_groups(task: dict, path: Path, n_neg: int = 7, seed: int = 0) -> Path:
    rng = random.Random(seed)
    rows = []
    for qid in task["train"]:
        did = "d" + qid[1:]
        others = rng.sample([d for d in task["docs"] if d != did], n_neg)
        psg = lambda d: {"docid": d, "title": "", "text": task["docs"][d]}
        rows.append(
            {
                "query_id": qid,
                "query": task["queries"][qid],
                "positive_passages": [psg(did)],
                "negative_passages": [psg(d) for d in others],
            }
        )
    write_parquet(path, pa.Table.from_pylist(rows, schema=TRAIN_GROUPS_SCHEMA))
    return path


def tiny_backbone(path: Path, texts: list[str], seed: int = 0) -> Path:
    # The demo's tokenizer recipe (byte-level BPE): transformers loads a qwen2 folder's
    # tokenizer as Qwen2Tokenizer, which keeps a BPE model but would drop a WordLevel one.
    fast = train_tokenizer(iter(texts * 3 + ["Query: Passage:"] * 3), vocab_size=1200)
    fast.save_pretrained(path)
    torch.manual_seed(seed)
    config = Qwen2Config(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=64,
        vocab_size=len(fast),
        max_position_embeddings=256,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
        tie_word_embeddings=True,
    )
    Qwen2ForCausalLM(config).save_pretrained(path)
    return path


def ndcg10(query_vecs: torch.Tensor, doc_vecs: torch.Tensor, relevant: list[int]) -> float:
    """Mean nDCG@10 with one relevant document per query."""
    scores = (query_vecs @ doc_vecs.T).numpy()
    gains = []
    for row, rel in zip(scores, relevant):
        rank = int((row > row[rel]).sum())  # 0-based; ties in the document's favour
        gains.append(1 / np.log2(rank + 2) if rank < 10 else 0.0)
    return float(np.mean(gains))


def training_config(**overrides) -> dict:
    config = {
        "group_size": 4,
        "lora": {
            "rank": 8,
            "alpha": 16,
            "dropout": 0.0,
            "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        },
        "temperature": 0.05,
        "learning_rate": 3e-3,
        "warmup_ratio": 0.1,
        "epochs": 1,
        "global_batch": 16,
        "per_device_batch": 8,
        "gradient_accumulation": 1,
        "world_size": 2,
        "max_length": {"query": 16, "passage": 24},
        "max_steps": 30,
        "checkpoint_every": 10,
        "seed": 42,
        "deepspeed_config": str(Path(__file__).resolve().parents[1] / "config/deepspeed/zero3.json"),
        "gradient_checkpointing": False,
        "zero_stage": 3,
        "packing": True,
        "max_packed_tokens": 4096,
    }
    config.update(overrides)
    return config
