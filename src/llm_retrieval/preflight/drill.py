"""A tiny random-weight model through the study's real code paths, on the cluster's own jobs.

:func:`build_tiny_study` (a CPU job) builds the model from config as the demo does (the architecture of
the study's trained backbone, random weights, a tokenizer trained on this machine) and a small synthetic
collection with training groups. Then, each in a job of its kind: :func:`encode_checks` (queries, and a
corpus shard with the shared prompt prefix, in the config's dtype on GPU), :func:`search_checks` (the
backend the job chooses) and :func:`train_checks` (two optimizer steps over two ranks under the
configured ZeRO stage, started with the training rule's srun line, a real SIGTERM after step 1, the
checkpoint, the retry exit code and the resume).
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pyarrow as pa

from ..train.preemption import RETRY_EXIT, SIGTERM_ENV
from . import Check, failed, passed

# The tiny model: the demo's build (backbones.<b>.build), small enough to build in seconds.
TINY_BUILD = {
    "seed": 0,
    "hidden_size": 64,
    "intermediate_size": 128,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
    "max_position_embeddings": 512,
}
DOCUMENTS, QUERIES, NEGATIVES = 64, 8, 7
WORDS = [
    "index",
    "search",
    "vector",
    "query",
    "passage",
    "model",
    "shard",
    "cluster",
    "token",
    "batch",
    "memory",
    "signal",
    "checkpoint",
    "resume",
    "rank",
    "gradient",
    "stage",
    "kernel",
    "device",
    "node",
    "partition",
    "retry",
    "limit",
    "schema",
    "config",
    "report",
    "table",
    "metric",
]


def drill_architecture(config: dict) -> str:
    """The architecture of the study's first trained backbone (else its first backbone)."""
    supervised = config["settings"].get("supervised", {}).get("backbones", [])
    names = supervised or [b for s in config["settings"].values() for b in s["backbones"]]
    return config["backbones"][names[0]]["architecture"]


def _text(rng: random.Random, n: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(n))


def build_tiny_study(config: dict, out_dir: str | Path) -> dict:
    """Model (``model/``, ``backbone.json``), collection (``corpus.parquet``, ``queries.parquet``) and
    ``groups.parquet`` under ``out_dir``; returns the backbone record."""
    from ..atomic import write_parquet
    from ..backbones import resolve_backbone
    from ..data.canonical import TRAIN_GROUPS_SCHEMA, write_corpus, write_queries

    out = Path(out_dir)
    rng = random.Random(0)
    docs = [{"id": f"d{i}", "title": "", "text": _text(rng, rng.randint(8, 40))} for i in range(DOCUMENTS)]
    write_corpus(out / "corpus.parquet", docs)
    queries = [
        {"query_set": "test", "id": f"q{i}", "text": " ".join(docs[i]["text"].split()[:4])} for i in range(QUERIES)
    ]
    write_queries(out / "queries.parquet", queries)
    psg = lambda d: {"docid": d["id"], "title": "", "text": d["text"]}
    groups = [
        {
            "query_id": q["id"],
            "query": q["text"],
            "positive_passages": [psg(docs[i])],
            "negative_passages": [psg(d) for d in rng.sample(docs[:i] + docs[i + 1 :], NEGATIVES)],
        }
        for i, q in enumerate(queries)
    ]
    write_parquet(out / "groups.parquet", pa.Table.from_pylist(groups, schema=TRAIN_GROUPS_SCHEMA))
    spec = {"architecture": drill_architecture(config), "build": dict(TINY_BUILD)}
    return resolve_backbone(spec, out / "model", out / "backbone.json")


def _spec(record: dict, config: dict, share_prefix: bool):
    from ..encoder import EncoderSpec

    # bf16, the study's GPU dtype (the Encoder runs float32 on a CPU).
    encoding = {
        **config["encoding"],
        "dtype": "bfloat16",
        "share_prefix": share_prefix,
        "batch_tokens": 4096,
        "max_text_tokens": {"query": 32, "passage": 64},
    }
    return EncoderSpec(backbone=record, encoding=encoding)


def _device() -> str:
    from ..encode import default_devices

    return default_devices()[0]


def encode_checks(kind: str, record: dict, tiny: Path, out: Path, config: dict) -> list[Check]:
    """Encode the tiny queries (kind encode_queries_and_first_shard) or corpus (encode_corpus_shard)."""
    from ..embeddings import read_embeddings
    from ..encode import encode_corpus_shard, encode_queries

    device = _device()
    dtype = "bfloat16" if device != "cpu" else "float32"
    name = f"{kind}: tiny model encodes"
    if kind == "encode_queries_and_first_shard":
        n = encode_queries(tiny / "queries.parquet", out, _spec(record, config, True), ["test"], device)
    else:
        n = encode_corpus_shard(
            tiny / "corpus.parquet", 0, 1, out, _spec(record, config, True), use_title=False, devices=[device]
        )
    _, vectors = read_embeddings(out)
    if len(vectors) != n or not np.isfinite(vectors).all():
        return [
            failed(
                name,
                f"{n} rows written, {len(vectors)} read, finite: {np.isfinite(vectors).all()}",
                "the encoder wrote unusable vectors: see the job's log",
            )
        ]
    checks = [passed(name, f"{n} rows x {vectors.shape[1]} on {device} in {dtype}, shared prompt prefix on")]
    if kind == "encode_corpus_shard":
        checks.append(_prefix_agreement(record, tiny, out, config, device, vectors))
    return checks


def _prefix_agreement(record, tiny: Path, out: Path, config, device, shared) -> Check:
    """The shared-prefix encoding against the plain one (same texts): cosine per row."""
    from ..embeddings import read_embeddings
    from ..encode import encode_corpus_shard

    plain_path = out.with_name("plain-" + out.name)
    encode_corpus_shard(
        tiny / "corpus.parquet", 0, 1, plain_path, _spec(record, config, False), use_title=False, devices=[device]
    )
    _, plain = read_embeddings(plain_path)
    cos = (shared * plain).sum(1) / (np.linalg.norm(shared, axis=1) * np.linalg.norm(plain, axis=1) + 1e-12)
    bound = 0.999 if device == "cpu" else 0.99  # bf16 rounds the cached prefix differently
    name = "encode_corpus_shard: shared prefix = plain encoding"
    detail = f"min cosine {cos.min():.5f} over {len(cos)} passages on {device}"
    return (
        passed(name, detail)
        if cos.min() > bound
        else failed(
            name, detail, f"below {bound}: set encoding.share_prefix: false and report the model's architecture"
        )
    )


def search_checks(queries: Path, shard: Path, out_dir: Path, config: dict) -> list[Check]:
    """Search the tiny corpus with the backend this job chooses; every query gets its top 10."""
    from ..search import choose_backend, search_collection

    backend = choose_backend(config["search"]["backend"])
    counts = search_collection(queries, [shard], ["test"], 10, False, out_dir, "preflight", config["search"]["backend"])
    run = (out_dir / "test.trec").read_text().splitlines()
    per_query = {}
    for line in run:
        per_query[line.split()[0]] = per_query.get(line.split()[0], 0) + 1
    name = "search: tiny corpus searched"
    detail = (
        f"backend {backend}: {len(per_query)} queries, {min(per_query.values(), default=0)}-"
        f"{max(per_query.values(), default=0)} hits each ({counts})"
    )
    if len(per_query) != QUERIES or min(per_query.values()) != 10:
        return [failed(name, detail, "every query should have 10 hits: see the job's log")]
    return [passed(name, detail)]


REPO = Path(__file__).resolve().parents[3]


def _error_line(output: str) -> str:
    """The line of a failed run that names the error (the last ``...Error: ...``), else its last line."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if re.search(r"\w+(Error|Exception): ", line)]
    return ((errors or lines or ["(no output)"])[-1])[:400]


def _exited_for_retry(run: subprocess.CompletedProcess) -> bool:
    """Exit 75 (EX_TEMPFAIL), or, under srun, a rank's 75: ``--kill-on-bad-exit`` terminates the ranks
    still in their exit once the first leaves (after the checkpoint barrier), and srun reports 143."""
    return run.returncode == RETRY_EXIT or f"Exited with exit code {RETRY_EXIT}" in run.stderr


def drill_training(config: dict, world: int = 2) -> dict:
    """The study's training section for the drill: two optimizer steps over ``world`` ranks, same ZeRO stage."""
    cfg = dict(config["training"])
    template = Path(cfg["deepspeed_config"])
    if not template.is_absolute() and not template.is_file():  # a results folder outside the repository
        cfg["deepspeed_config"] = str(REPO / template)
    cfg.update(
        world_size=world,
        max_steps=2,
        per_device_batch=1,
        gradient_accumulation=1,
        global_batch=world,
        group_size=min(cfg["group_size"], NEGATIVES + 1),
        max_length={"query": 16, "passage": 32},
        checkpoint_every=0,
        warmup_ratio=0.0,
    )
    return cfg


def drill_config(config: dict) -> dict:
    """The config whose training rule resources and srun line the drill uses (world size 2)."""
    return {**config, "training": drill_training(config)}


def _train_command(launcher: str, record_path: Path, tiny: Path, out: Path, training: dict) -> str:
    script = REPO / "workflow" / "scripts" / "train_lora.py"
    import shlex

    args = [
        sys.executable,
        str(script),
        "--backbone",
        str(record_path),
        "--groups",
        str(tiny / "groups.parquet"),
        "--training",
        json.dumps(training),
        "--adapter",
        str(out / "adapter"),
        "--report",
        str(out / "training.json"),
        "--checkpoints",
        str(out / "checkpoints"),
        "--log",
        str(out / "train.log"),
    ]
    return f"{launcher} {shlex.join(args)}".strip()


def train_checks(tiny: Path, out: Path, config: dict, launcher: str, world: int = 2) -> list[Check]:
    """Two steps over ``world`` ranks with a SIGTERM after step 1: exit 75 with its checkpoint, then the resume."""
    import torch

    training = drill_training(config, world)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    command = _train_command(launcher, tiny / "backbone.json", tiny, out, training)
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    how = f"{'srun' if launcher else 'local spawn'}, {backend}"
    first = subprocess.run(
        command, shell=True, capture_output=True, text=True, check=False, env={**os.environ, SIGTERM_ENV: "1"}
    )
    (out / "first-attempt.log").write_text(first.stdout + first.stderr)
    checkpoints = sorted(p.name for p in (out / "checkpoints").glob("step-*")) if (out / "checkpoints").is_dir() else []
    name = "train_lora: SIGTERM after step 1 checkpoints and exits for retry"
    if not _exited_for_retry(first) or checkpoints != ["step-00000001"]:
        return [
            failed(
                name,
                f"exit {first.returncode} ({how}), checkpoints {checkpoints}: {_error_line(first.stderr)}",
                f"see {out / 'first-attempt.log'}",
            )
        ]
    checks = [
        passed(
            name,
            f"exit {first.returncode}{'' if first.returncode == RETRY_EXIT else f' ({RETRY_EXIT} from the ranks)'} with checkpoint {checkpoints[0]} over {world} rank{'s' if world > 1 else ''} ({how})",
        )
    ]
    second = subprocess.run(command, shell=True, capture_output=True, text=True, check=False)
    (out / "second-attempt.log").write_text(second.stdout + second.stderr)
    name = "train_lora: the retry resumes and finishes"
    report = json.loads((out / "training.json").read_text()) if (out / "training.json").is_file() else {}
    if second.returncode != 0 or report.get("resumed_from") != [1] or report.get("steps") != 2:
        return checks + [
            failed(
                name,
                f"exit {second.returncode}, log {report or 'missing'}: {_error_line(second.stderr)}",
                f"see {out / 'second-attempt.log'}",
            )
        ]
    return checks + [
        passed(
            name,
            f"resumed at step 1, 2 steps under ZeRO-{report['zero_stage']} in {report['dtype']}, "
            f"losses {', '.join(f'{x:.3f}' for x in report['losses'])}, adapter exported",
        )
    ]
