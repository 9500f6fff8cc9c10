import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # shared fixture modules (data_fixtures, train_fixtures, ...)
os.environ.setdefault("HF_HUB_OFFLINE", "1")  # tests never fetch
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

TINY_BUILD = {
    "seed": 0,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 1000,
}


@pytest.fixture(scope="session")
def tiny_backbones(tmp_path_factory):
    """backbone.json records of a tiny Qwen2 and a tiny Qwen2.5-VL, built once per test session."""
    from llm_retrieval.backbones import resolve_backbone

    root = tmp_path_factory.mktemp("backbones")
    return {
        arch: resolve_backbone(
            {"architecture": arch, "build": TINY_BUILD}, root / arch / "model", root / arch / "backbone.json"
        )
        for arch in ("qwen2", "qwen2_5_vl")
    }


@pytest.fixture(scope="session")
def finished_mini(tmp_path_factory):
    """The mini slice of the demo study (tests/fixtures/mini.yaml), run to the end once per test session
    and shared by every test that reads a finished study (the workflow and report tests); the fault
    tests (tests/test_faults.py) copy it as the uninterrupted reference."""
    from workflow_helpers import scratch_copy, snakemake

    workdir = scratch_copy(tmp_path_factory.mktemp("mini"))
    snakemake(workdir, "--cores", "2", "--configfile", "config/mini.yaml")
    return workdir
