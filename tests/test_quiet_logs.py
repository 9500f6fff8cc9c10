"""No line a person would read as an error in the output of a run that succeeded (DeepSpeed's libaio
probe), and nothing but the project's own error when an input is bad (the datasets json builder)."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys

from workflow_helpers import ROOT

ERROR = re.compile("error", re.IGNORECASE)
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + str(ROOT / "tests"))


def error_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if ERROR.search(line)]


def test_cpu_training_init_probes_no_deepspeed_op():
    """Reading deepspeed.ops.__compatible_ops__ probes every op, the async-I/O one by linking against
    libaio; the training sets the one entry DeepSpeed's init reads instead of probing."""
    script = """
import os
import deepspeed.ops
probed = []
deepspeed.ops._probe_compatible_ops = lambda: probed.append(1) or {}
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="29531", RANK="0", LOCAL_RANK="0", WORLD_SIZE="1")
from llm_retrieval.train.engine import init_process_group
init_process_group(on_gpu=False)
print("probed" if probed else "not probed", deepspeed.ops.__compatible_ops__)
"""
    env = dict(ENV, DS_ACCELERATOR="cpu")
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, check=False, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "not probed {'deepspeed_shm_comm': False}" in proc.stdout


def test_a_tiny_training_run_that_succeeds_prints_no_error_line(tmp_path):
    from train_fixtures import synthetic_task, tiny_backbone, training_config, write_groups

    task = synthetic_task()
    backbone = tiny_backbone(tmp_path / "backbone", list(task["docs"].values()) + list(task["queries"].values()))
    (tmp_path / "backbone.json").write_text(json.dumps({"path": str(backbone), "architecture": "qwen2"}))
    training = training_config(max_steps=2, checkpoint_every=100, world_size=1, per_device_batch=8, global_batch=8)
    out = tmp_path / "run"
    cmd = [
        sys.executable, str(ROOT / "workflow/scripts/train_lora.py"),
        "--backbone", str(tmp_path / "backbone.json"),
        "--groups", str(write_groups(task, tmp_path / "groups.parquet")),
        "--training", json.dumps(training),
        "--adapter", str(out / "adapter"), "--report", str(out / "training.json"),
        "--checkpoints", str(out / "ckpt"), "--log", str(out / "train.log"),
    ]  # fmt: skip
    proc = subprocess.run(cmd, env=ENV, check=False, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert (out / "adapter").is_dir()
    # What the job prints (Snakemake's terminal) and what its log holds.
    assert error_lines(proc.stdout + proc.stderr + (out / "train.log").read_text()) == []


def test_a_malformed_training_file_prints_only_the_projects_own_error(tmp_path):
    root = tmp_path / "mirror"
    path = root / "T" / "x" / "train.jsonl.gz"
    path.parent.mkdir(parents=True)
    good = json.dumps({"query_id": "1", "query": "q", "positive_passages": [], "negative_passages": []})
    path.write_bytes(gzip.compress(f"{good}\n{{oops\n{good}\n".encode()))
    script = f"""
from llm_retrieval.data.canonical import DataError
from llm_retrieval.data.tevatron import prepare_training_groups
try:
    prepare_training_groups({{"dataset": "T/x", "data_root": {str(root)!r}}}, {str(tmp_path / "g.parquet")!r},
                            {str(tmp_path / "work")!r})
except DataError as err:
    print("project error:", err)
"""
    proc = subprocess.run(
        [sys.executable, "-c", script], env=ENV, check=False, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = error_lines(proc.stdout + proc.stderr)
    assert line.startswith(f"project error: {path}: line 2: malformed JSON")
