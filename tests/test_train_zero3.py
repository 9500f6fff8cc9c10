"""End-to-end LoRA training under DeepSpeed ZeRO-3 with two ranks on CPU (gloo).

Two ranks really run ZeRO-3 (partitioned weights and AdamW state, gathered negatives);
the trained retriever must beat its untrained backbone on held-out queries, and a run
killed mid-way and rerun must end with the weights of an uninterrupted run.
"""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file
from train_fixtures import ndcg10, synthetic_task, tiny_backbone, training_config, write_groups

from llm_retrieval.data.canonical import DataError
from llm_retrieval.encoder import Encoder, EncoderSpec
from llm_retrieval.modeling import load_text_model
from llm_retrieval.train import checkpoint
from llm_retrieval.train.driver import _free_port, launch
from llm_retrieval.train.job import TrainJob
from llm_retrieval.train.rank import forward_backward
from llm_retrieval.train.rank import setup as setup_rank


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("train")
    task = synthetic_task()
    backbone = tiny_backbone(root / "backbone", list(task["docs"].values()) + list(task["queries"].values()))
    return {
        "root": root,
        "task": task,
        "backbone": str(backbone),
        "groups": str(write_groups(task, root / "g.parquet")),
    }


def _job(setup, name: str, training: dict, fail_at_step: int | None = None) -> TrainJob:
    out = setup["root"] / name
    return TrainJob(
        setup["backbone"],
        "qwen2",
        setup["groups"],
        str(out / "adapter"),
        str(out / "checkpoints"),
        str(out / "train_log.json"),
        training,
        fail_at_step=fail_at_step,
    )


def _held_out_ndcg(setup, training, adapter=None) -> float:
    """nDCG@10 on the held-out queries, encoded by the study's encoder in the supervised format."""
    task = setup["task"]
    spec = EncoderSpec(
        {"path": setup["backbone"], "architecture": "qwen2"},
        {"normalize": True, "dtype": "float32", "batch_tokens": 4096},
        adapter,
        training["max_length"],
    )
    encoder = Encoder(spec, "cpu")
    doc_ids = list(task["docs"])
    relevant = [doc_ids.index("d" + qid[1:]) for qid in task["test"]]
    queries = torch.from_numpy(encoder.encode("query", [task["queries"][q] for q in task["test"]]))
    docs = torch.from_numpy(encoder.encode("passage", [task["docs"][d] for d in doc_ids]))
    return ndcg10(queries, docs, relevant)


@pytest.mark.slow
def test_zero3_two_ranks_train_a_better_retriever(setup):
    training = training_config(learning_rate=1e-2, max_steps=40, checkpoint_every=20)
    job = _job(setup, "main", training)
    log = launch(job, world_size=2)

    assert log["zero_stage"] == 3 and log["world_size"] == 2 and log["global_batch"] == 16
    assert log["optimizer_steps"] == log["steps"] == 40 and len(log["losses"]) == 40
    assert log["dtype"] == "torch.float32" and log["seconds_per_step"] > 0
    assert json.loads((setup["root"] / "main/train_log.json").read_text())["losses"] == log["losses"]
    first, last = sum(log["losses"][:8]) / 8, sum(log["losses"][-8:]) / 8
    assert last < first - 0.5, log["losses"]

    adapter = setup["root"] / "main/adapter"
    assert sorted(p.name for p in adapter.iterdir() if p.suffix in {".safetensors", ".json", ".bin", ".pt"}) == [
        "adapter_config.json",
        "adapter_model.safetensors",
    ]
    assert json.loads((adapter / "adapter_config.json").read_text())["r"] == training["lora"]["rank"]

    untrained = _held_out_ndcg(setup, training)
    trained = _held_out_ndcg(setup, training, str(adapter))
    assert trained > untrained + 0.08, (untrained, trained)


@pytest.mark.slow
def test_resume_after_failure_matches_uninterrupted_run(setup):
    lora = {**training_config()["lora"], "dropout": 0.1}  # dropout: the RNG state must be restored too
    training = training_config(max_steps=8, checkpoint_every=3, lora=lora)
    reference = launch(_job(setup, "straight", training), world_size=2)

    with pytest.raises(Exception, match="injected failure after optimizer step 5"):
        launch(_job(setup, "resumed", training, fail_at_step=5), world_size=2)
    ckpts = setup["root"] / "resumed/checkpoints"
    assert checkpoint.latest_complete(ckpts).name == "step-00000003"
    assert not (setup["root"] / "resumed/adapter").exists()
    resumed = launch(_job(setup, "resumed", training), world_size=2)

    assert resumed["resumed_from"] == [3]
    assert resumed["optimizer_steps"] == reference["optimizer_steps"] == 8
    assert resumed["steps"] == 8 and resumed["steps_this_process"] == 5
    assert resumed["losses"] == pytest.approx(reference["losses"], abs=1e-6)
    a = load_file(str(setup["root"] / "straight/adapter/adapter_model.safetensors"))
    b = load_file(str(setup["root"] / "resumed/adapter/adapter_model.safetensors"))
    assert a.keys() == b.keys() and len(a) == 28
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)
    assert any(a[k].abs().sum() > 0 for k in a if "lora_B" in k)  # it trained at all


def _two_steps_with_gradients(index: int, job: TrainJob, port: int, out: str) -> None:
    """One rank: two optimizer steps, recording the loss and the full LoRA gradients before each."""
    import torch.distributed as dist
    from deepspeed.utils import safe_get_full_grad

    os.environ.update(
        RANK=str(index),
        LOCAL_RANK=str(index),
        WORLD_SIZE="2",
        LOCAL_WORLD_SIZE="2",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    rank = setup_rank(job)
    record = {}
    for step in range(2):
        record[f"loss{step}"] = torch.tensor(forward_backward(rank.engine, rank.inputs(step, 0), job.training, 2))
        for name, param in rank.engine.module.named_parameters():
            if param.requires_grad:  # collective under ZeRO-3: every rank calls it, in the same order
                record[f"{step}:{name}"] = safe_get_full_grad(param).detach().clone()
        rank.engine.step()
    if index == 0:
        torch.save(record, out)
    dist.barrier()
    dist.destroy_process_group()


@pytest.mark.slow
def test_zero_stages_2_and_3_give_the_same_loss_and_lora_gradients(setup):
    import torch.multiprocessing as mp

    results = {}
    for stage in (2, 3):
        training = training_config(
            zero_stage=stage, max_steps=2, learning_rate=1e-2, warmup_ratio=0.0, checkpoint_every=100
        )  # no warm-up: step 1 updates LoRA B
        out = str(setup["root"] / f"stage{stage}.pt")
        mp.spawn(
            _two_steps_with_gradients,
            args=(_job(setup, f"stage{stage}", training), _free_port(), out),
            nprocs=2,
            join=True,
        )
        results[stage] = torch.load(out)
    two, three = results[2], results[3]
    assert two.keys() == three.keys() and len(two) == 2 + 2 * 28
    for key in two:
        torch.testing.assert_close(two[key], three[key], rtol=1e-4, atol=1e-6, msg=key)
    # Step 2 follows an update of LoRA B, so every LoRA gradient is live by then.
    assert all(two[k].abs().sum() > 0 for k in two if k.startswith("1:"))


def test_incomplete_checkpoints_are_ignored(tmp_path):
    (tmp_path / "step-00000004").mkdir()  # no manifest: killed mid-save
    (tmp_path / ".step-00000006.tmp").mkdir()
    done = tmp_path / "step-00000002"
    done.mkdir()
    (done / checkpoint.MANIFEST).write_text("{}")
    assert checkpoint.latest_complete(tmp_path) == done
    assert checkpoint.latest_complete(tmp_path / "missing") is None


def test_supervised_encoder_names_a_folder_without_adapter(tmp_path):
    with pytest.raises(DataError, match="adapter_model.safetensors, adapter_config.json missing"):
        load_text_model("unused", "qwen2", adapter_dir=str(tmp_path))


def _load_partitioned(index: int, backbone: str, port: int, out: str) -> None:
    """One rank: load the backbone under a live HfDeepSpeedConfig (ZeRO-3), recording every .to() on it."""
    import torch.distributed as dist
    from transformers.integrations import HfDeepSpeedConfig

    from llm_retrieval.train.engine import init_process_group

    os.environ.update(
        RANK="0", LOCAL_RANK="0", WORLD_SIZE="1", LOCAL_WORLD_SIZE="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port)
    )
    deepspeed = init_process_group(on_gpu=torch.cuda.is_available())
    hf_ds = HfDeepSpeedConfig({"train_micro_batch_size_per_gpu": 1, "zero_optimization": {"stage": 3}})  # noqa: F841
    moved = []
    original_to = torch.nn.Module.to

    def recording_to(module, *args, **kwargs):
        if any(hasattr(p, "ds_id") for p in module.parameters()):
            moved.append(f"{type(module).__name__}.to{args}")
        return original_to(module, *args, **kwargs)

    torch.nn.Module.to = recording_to
    try:
        # The device the caller passes (training loads on "cpu") is not where zero.Init puts the stand-ins.
        model = load_text_model(backbone, "qwen2", "float32", "cpu")
    finally:
        torch.nn.Module.to = original_to
    placed = deepspeed.accelerator.get_accelerator().current_device_name()
    params = list(model.parameters())
    with open(out, "w") as f:
        json.dump(
            {
                "moved": moved,
                "partitioned": all(hasattr(p, "ds_status") for p in params),
                "devices": sorted({str(p.device) for p in params}),
                "placed": placed,
            },
            f,
        )
    dist.destroy_process_group()


def _partitioned_load_record(setup) -> dict:
    import torch.multiprocessing as mp

    out = setup["root"] / "partitioned.json"
    mp.spawn(_load_partitioned, args=(setup["backbone"], _free_port(), str(out)), nprocs=1, join=True)
    return json.loads(out.read_text())


def test_a_zero3_partitioned_backbone_is_never_moved_after_loading(setup):
    """Under ZeRO-3 zero.Init puts each stand-in on cuda:LOCAL_RANK; a model.to("cpu") after
    from_pretrained moved them to the CPU, so DeepSpeed gathered the weights there."""
    record = _partitioned_load_record(setup)
    assert record["partitioned"]
    assert record["moved"] == []
    assert record["devices"] == [record["placed"]]  # where zero.Init put them


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_every_zero3_stand_in_stays_on_the_rank_s_gpu(setup):
    record = _partitioned_load_record(setup)
    assert record["moved"] == [] and record["devices"] == ["cuda:0"]
