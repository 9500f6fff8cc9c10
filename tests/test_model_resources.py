"""The size axis: jobs sized from the backbone's parameter count, not from hand-set values."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml
from workflow_helpers import ROOT

from llm_retrieval import cluster, model_resources

SCALING = yaml.safe_load(Path(ROOT / "config/scaling.yaml").read_text())


def test_the_parameter_formula_gives_the_published_counts():
    for hub_id, shape in model_resources._reference().items():
        if shape["model_type"] == "qwen2":
            assert model_resources.decoder_parameters(shape) == (shape["params_encoder"], shape["params_embedding"]), (
                hub_id
            )


def resources_of(config, kind, backbone, record_of=lambda b: "/nonexistent"):
    res = model_resources.sized_resources(config, kind, cluster.rule_resources(config, kind), record_of)
    wc = SimpleNamespace(backbone=backbone)
    return {k: (v(wc, 1) if callable(v) else v) for k, v in res.items()}


def test_runtime_and_memory_grow_with_the_model_and_follow_its_parameter_count():
    order = ["q0.5b", "q1.5b", "q3b", "q7b", "q14b"]
    for kind in ("encode_corpus_shard", "train_lora"):
        sized = [resources_of(SCALING, kind, b) for b in order]
        runtimes = [r["runtime"] for r in sized]
        assert runtimes == sorted(runtimes) and runtimes[0] < runtimes[-1], (kind, runtimes)
        assert sized[3]["runtime"] == cluster.rule_resources(SCALING, kind)["runtime"](None, 1)  # 7B: as configured
        assert [r["mem_mb"] for r in sized] == sorted(r["mem_mb"] for r in sized)
    # an instruct model has its base's shape
    assert resources_of(SCALING, "encode_queries_and_first_shard", "q14b-i") == resources_of(
        SCALING, "encode_queries_and_first_shard", "q14b"
    )
    assert resources_of(SCALING, "encode_queries_and_first_shard", "q14b")["gpu"] == 1  # 14B bf16 fits one 80 GB GPU


def test_the_resolved_config_json_overrides_the_published_shape(tmp_path):
    shape = dict(model_resources.known_shape("Qwen/Qwen2.5-0.5B"), num_hidden_layers=48)  # twice the layers
    (tmp_path / "model").mkdir()
    (tmp_path / "model/config.json").write_text(json.dumps(shape))
    (tmp_path / "backbone.json").write_text(json.dumps({"path": str(tmp_path / "model")}))
    spec = SCALING["backbones"]["q0.5b"]
    assert model_resources.scale(spec, tmp_path / "backbone.json") == pytest.approx(
        2 * model_resources.scale(spec), rel=1e-3
    )


def test_a_backbone_too_large_for_the_gpus_is_a_named_error():
    config = {
        **SCALING,
        "slurm": {"gpu_memory_mb": 24576},
        "backbones": {**SCALING["backbones"], "q14b": SCALING["backbones"]["q14b"]},
    }
    with pytest.raises(model_resources.SizingError, match=r"backbone 'q14b'.*slurm.gpu_memory_mb=24576"):
        model_resources.check_fits(config)
