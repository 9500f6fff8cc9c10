"""The workflow scripts that start several processes (issue 23): each spawned process re-imports the
script it was started from (as ``__mp_main__``), so a script's work must not run at import. Each
test runs the real script file the way its rule does, on two CPU processes."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from train_fixtures import synthetic_task, tiny_backbone, training_config, write_groups
from workflow_helpers import encoding_section

from llm_retrieval.data.canonical import write_corpus
from llm_retrieval.embeddings import read_embeddings

ROOT = Path(__file__).resolve().parents[1]
SCRIPTS = ROOT / "workflow" / "scripts"
ENCODING = encoding_section(
    {
        "prompts": {"query": 'Query: "{text}".', "passage": 'Passage: "{text}".', "assistant_prefill": '"'},
        "normalize": True,
        "dtype": "float32",
        "batch_tokens": 256,
        "chunk_rows": 8,
        "max_text_tokens": {"query": 16, "passage": 24},
    }
)


def run(args: list, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=600, check=False
    )


@pytest.mark.slow
def test_train_lora_script_with_world_size_2_outside_slurm_spawns_two_ranks_and_finishes(tmp_path):
    task = synthetic_task()
    backbone = tiny_backbone(tmp_path / "backbone", list(task["docs"].values()) + list(task["queries"].values()))
    record = tmp_path / "backbone.json"
    record.write_text(json.dumps({"path": str(backbone), "architecture": "qwen2"}))
    groups = write_groups(task, tmp_path / "groups.parquet")
    training = training_config(max_steps=2, checkpoint_every=100, world_size=2)
    done = run(
        [
            SCRIPTS / "train_lora.py",
            "--backbone",
            record,
            "--groups",
            groups,
            "--training",
            json.dumps(training),
            "--adapter",
            tmp_path / "adapter",
            "--report",
            tmp_path / "training.json",
            "--checkpoints",
            tmp_path / "checkpoints",
            "--log",
            tmp_path / "train.log",
        ],
        tmp_path,
    )
    log = (tmp_path / "train.log").read_text() if (tmp_path / "train.log").exists() else ""
    assert done.returncode == 0, (done.stderr + log)[-3000:]
    report = json.loads((tmp_path / "training.json").read_text())
    assert report["world_size"] == 2 and report["steps"] == 2
    assert (tmp_path / "adapter" / "adapter_model.safetensors").is_file()


def snakemake_script(script: Path, snakemake: SimpleNamespace, dest: Path, devices: list[str]) -> Path:
    """The file Snakemake's ``script:`` runs with ``python <file>``: a preamble defining ``snakemake``,
    then the script's source. The preamble here also makes the job see two (CPU) devices."""
    (dest.parent / "snakemake.pickle").write_bytes(pickle.dumps(snakemake))
    preamble = (
        f"import pickle\nsnakemake = pickle.load(open({str(dest.parent / 'snakemake.pickle')!r}, 'rb'))\n"
        f"import llm_retrieval.encode\nllm_retrieval.encode.default_devices = lambda: {devices!r}\n"
    )
    dest.write_text(preamble + script.read_text())
    return dest


@pytest.mark.slow
def test_encode_corpus_shard_script_on_two_devices_spawns_one_worker_each_and_finishes(tiny_backbones, tmp_path):
    script = "encode_corpus_shard.py"
    corpus = tmp_path / "corpus.parquet"
    write_corpus(corpus, ({"id": f"d{i}", "title": "", "text": f"text {i} " * (i % 7 + 1)} for i in range(30)))
    from llm_retrieval.data.canonical import write_queries

    write_queries(tmp_path / "queries.parquet", [{"id": "q1", "text": "text 3", "query_set": "test"}])
    record = tmp_path / "backbone.json"
    record.write_text(json.dumps(tiny_backbones["qwen2"]))
    out = tmp_path / "shard.parquet"
    snakemake = SimpleNamespace(
        threads=1,
        log=[str(tmp_path / "encode.log")],
        wildcards=SimpleNamespace(shard="0"),
        input=SimpleNamespace(
            adapter=[], backbone=str(record), corpus=str(corpus), queries=str(tmp_path / "queries.parquet")
        ),
        output=SimpleNamespace(shard=str(out), queries=str(tmp_path / "queries-emb.parquet")),
        params=SimpleNamespace(
            encoding=ENCODING,
            max_length=None,
            num_shards=1,
            use_title=False,
            query_sets=["test"],
            estimated_documents=30,
        ),
    )
    if script == "encode_corpus_shard.py":
        snakemake.output = [str(out)]
    done = run([snakemake_script(SCRIPTS / script, snakemake, tmp_path / f"tmp.{script}", ["cpu", "cpu"])], tmp_path)
    log = (tmp_path / "encode.log").read_text() if (tmp_path / "encode.log").exists() else ""
    assert done.returncode == 0, (done.stderr + log)[-3000:]
    ids, _ = read_embeddings(out)
    assert ids == [f"d{i}" for i in range(30)]


SPAWNING_SCRIPTS = ("train_lora.py", "encode_corpus_shard.py", "encode_queries_and_first_shard.py")


@pytest.mark.parametrize("script", SPAWNING_SCRIPTS)
def test_a_script_that_may_spawn_processes_does_its_work_only_under_the_main_guard(script):
    """Top level: imports, definitions and the guard only (the two-process runs above cover two of them)."""
    import ast

    tree = ast.parse((SCRIPTS / script).read_text())
    allowed = (ast.Import, ast.ImportFrom, ast.FunctionDef, ast.Expr, ast.Assign)
    for node in tree.body:
        if isinstance(node, ast.If):
            assert ast.unparse(node.test) == "__name__ == '__main__'", ast.unparse(node)
        else:
            assert isinstance(node, allowed), f"{script}: top-level {ast.unparse(node)[:80]}"
            if isinstance(node, (ast.Expr, ast.Assign)):  # a docstring or a constant, never a call
                assert not any(isinstance(n, ast.Call) for n in ast.walk(node)), ast.unparse(node)[:80]
