"""Encoder family: a BERT-style backbone in the supervised setting (CLS / mean pooling, [CLS] text [SEP])."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from snakemake.utils import validate
from workflow_helpers import ROOT

from llm_retrieval import encoders
from llm_retrieval.backbones import resolve_backbone
from llm_retrieval.encoder import Encoder, EncoderSpec
from llm_retrieval.memory_guard import InputMemoryError
from llm_retrieval.modeling import load_tokenizer
from llm_retrieval.study import ConfigError, Study
from llm_retrieval.tiny_models import build_tiny_model

BERT_BUILD = {
    "seed": 0,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "vocab_size": 1000,
}


@pytest.fixture(scope="module")
def tiny_bert(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    return resolve_backbone({"architecture": "bert", "build": BERT_BUILD}, root / "model", root / "backbone.json")


def test_a_bert_reads_cls_text_sep_and_pools_cls_or_mean(tiny_bert):
    tok = load_tokenizer(tiny_bert["path"])
    spec = EncoderSpec(
        tiny_bert, {"normalize": True, "dtype": "float32", "batch_tokens": 256}, None, {"query": 16, "passage": 16}
    )
    formatter, budgets = spec.formatter_and_budgets(tok)
    ids = formatter.token_ids("query", ["sort a list " * 20], budgets["query"])[0]
    assert ids[0] == tok.cls_token_id and ids[-1] == tok.sep_token_id and len(ids) == 16
    texts = ["def add(a, b): return a + b", "sort a list in place", "x"]
    cls = Encoder(spec, "cpu").encode("passage", texts)
    mean = Encoder(EncoderSpec({**tiny_bert, "pooling": "mean"}, spec.encoding, None, spec.max_length), "cpu").encode(
        "passage", texts
    )
    assert cls.shape == mean.shape == (3, 32) and not np.allclose(cls, mean)
    singles = np.concatenate([Encoder(spec, "cpu").encode("passage", [t]) for t in texts])
    np.testing.assert_allclose(cls, singles, atol=1e-5)  # padding never changes a vector


def test_lora_targets_follow_the_architecture():
    qwen = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    assert encoders.lora_targets("qwen2", qwen) == qwen
    pattern = encoders.lora_targets("bert", qwen)
    import re

    for name in (
        "encoder.layer.0.attention.self.query",
        "encoder.layer.1.attention.output.dense",
        "encoder.layer.0.intermediate.dense",
        "encoder.layer.0.output.dense",
    ):
        assert re.fullmatch(pattern, name), name
    assert not re.fullmatch(pattern, "pooler.dense")


def mini_with_bert() -> dict:
    config = yaml.safe_load(Path(ROOT / "tests/fixtures/mini.yaml").read_text())
    config["backbones"]["bert"] = {"label": "BERT", "architecture": "bert", "build": BERT_BUILD}
    return config


@pytest.mark.parametrize(
    "edit, message",
    [
        (
            lambda c: c["settings"]["zeroshot"]["backbones"].append("bert"),
            "settings.zeroshot.backbones: 'bert' is a bert encoder; zero-shot PromptReps needs a chat LM",
        ),
        (
            lambda c: c["backbones"]["bert"].update(pooling="last"),
            "backbones.bert.pooling: 'last' is not a pooling of architecture 'bert'",
        ),
        (
            lambda c: c["backbones"]["base"].update(pooling="cls"),
            "backbones.base.pooling: 'cls' is not a pooling of architecture 'qwen2'",
        ),
        (
            lambda c: (
                c["settings"]["supervised"]["backbones"].append("bert"),
                c["backbones"]["bert"]["build"].update(max_position_embeddings=32),
            ),
            "training.max_length.passage: 48 exceeds the position limit of backbone 'bert', 32 tokens",
        ),
    ],
)
def test_a_pooling_or_setting_the_architecture_lacks_is_a_config_error(edit, message):
    config = mini_with_bert()
    edit(config)
    validate(copy.deepcopy(config), str(ROOT / "workflow/schemas/config.schema.yaml"))
    with pytest.raises(ConfigError, match=message):
        Study(config)


@pytest.mark.slow
def test_a_tiny_bert_trains_with_lora_on_its_own_modules_and_encodes_with_the_adapter(tmp_path):
    from safetensors.torch import load_file
    from train_fixtures import synthetic_task, training_config, write_groups

    from llm_retrieval.train.driver import launch
    from llm_retrieval.train.job import TrainJob

    task = synthetic_task()
    texts = list(task["docs"].values()) + list(task["queries"].values())
    record = build_tiny_model("bert", BERT_BUILD, tmp_path / "bert", texts)
    training = training_config(
        world_size=1, global_batch=8, max_steps=6, checkpoint_every=3, learning_rate=1e-2
    )  # packing on in the config: an encoder runs padded
    job = TrainJob(
        record["path"],
        "bert",
        str(write_groups(task, tmp_path / "g.parquet")),
        str(tmp_path / "adapter"),
        str(tmp_path / "ckpt"),
        str(tmp_path / "log.json"),
        training,
        pooling="mean",
        snapshots={3: str(tmp_path / "adapter-step-3")},
    )
    log = launch(job, world_size=1)
    # Padded, not packed: packing's per-sequence masks are causal, an encoder's attention is not.
    # (Six noisy steps of a random BERT with dropout need not lower the loss; that it trained at
    # all is the non-zero LoRA B and the changed embedding below.)
    assert log["steps"] == 6 and log["packing"] is False and all(np.isfinite(log["losses"]))
    weights = load_file(str(tmp_path / "adapter/adapter_model.safetensors"))
    assert any(w.abs().sum() > 0 for k, w in weights.items() if "lora_B" in k)
    assert any("attention.self.query" in k for k in weights) and any("intermediate.dense" in k for k in weights)
    assert (tmp_path / "adapter-step-3/adapter_model.safetensors").is_file()
    spec = EncoderSpec(
        {**record, "pooling": "mean"},
        {"normalize": True, "dtype": "float32", "batch_tokens": 256},
        str(tmp_path / "adapter"),
        training["max_length"],
    )
    trained = Encoder(spec, "cpu").encode("query", ["where is x"])
    untrained = Encoder(EncoderSpec(spec.backbone, spec.encoding, None, spec.max_length), "cpu").encode(
        "query", ["where is x"]
    )
    assert not np.allclose(trained, untrained)


def test_inputs_too_long_for_memory_name_the_setting_to_change(tiny_bert, monkeypatch):
    spec = EncoderSpec(
        tiny_bert, {"normalize": True, "dtype": "float32", "batch_tokens": 256}, None, {"query": 16, "passage": 16}
    )
    encoder = Encoder(spec, "cpu")

    def exhausted(*args, **kwargs):
        raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")

    monkeypatch.setattr(encoder, "model", exhausted)
    with pytest.raises(InputMemoryError, match="lower encoding.batch_tokens, or the input length"):
        encoder.encode("passage", ["a long text"])


@pytest.mark.slow
def test_full_fine_tuning_trains_every_weight_resumes_exactly_and_exports_a_model_folder(tmp_path):
    from safetensors.torch import load_file
    from train_fixtures import synthetic_task, training_config, write_groups

    task = synthetic_task()
    record = build_tiny_model(
        "bert", BERT_BUILD, tmp_path / "bert", list(task["docs"].values()) + list(task["queries"].values())
    )
    groups = str(write_groups(task, tmp_path / "g.parquet"))
    training = training_config(
        world_size=1, global_batch=8, max_steps=5, checkpoint_every=2, learning_rate=1e-3, method="full"
    )

    backbone = tmp_path / "backbone.json"
    backbone.write_text(json.dumps({**record, "pooling": "mean"}), encoding="utf-8")

    def train(name, *extra):  # each run in its own process, as the workflow's train_lora job runs
        out = tmp_path / name
        proc = subprocess.run(
            [
                sys.executable,
                str(ROOT / "workflow/scripts/train_lora.py"),
                "--backbone",
                str(backbone),
                "--groups",
                groups,
                "--training",
                json.dumps(training),
                "--adapter",
                str(out / "model"),
                "--checkpoints",
                str(out / "ckpt"),
                "--report",
                str(out / "log.json"),
                *extra,
            ],
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
        )
        return proc, (json.loads((out / "log.json").read_text()) if (out / "log.json").is_file() else None)

    _, straight = train("straight")
    failed, _ = train("resumed", "--fail-at-step", "3")
    assert failed.returncode != 0 and "injected failure after optimizer step 3" in failed.stderr + failed.stdout
    _, resumed = train("resumed")
    assert resumed["resumed_from"] == [2] and resumed["losses"] == pytest.approx(straight["losses"], abs=1e-6)
    exported = tmp_path / "straight/model"
    assert (exported / "config.json").is_file() and not (exported / "adapter_config.json").exists()
    a, b = load_file(str(exported / "model.safetensors")), load_file(str(tmp_path / "resumed/model/model.safetensors"))
    base = load_file(str(tmp_path / "bert/model.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) or torch.allclose(a[k], b[k], atol=1e-6) for k in a)
    changed = [k for k in a if k in base and not torch.allclose(a[k], base[k])]
    assert any("embeddings" in k for k in changed) and any("layer.1.output" in k for k in changed)  # every weight
    spec = EncoderSpec(
        {**record, "pooling": "mean"},
        {"normalize": True, "dtype": "float32", "batch_tokens": 256},
        str(exported),
        training["max_length"],
    )
    trained = Encoder(spec, "cpu").encode("query", ["where is x"])
    untrained = Encoder(EncoderSpec(spec.backbone, spec.encoding, None, spec.max_length), "cpu").encode(
        "query", ["where is x"]
    )
    assert not np.allclose(trained, untrained)
