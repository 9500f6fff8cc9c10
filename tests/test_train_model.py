"""The retriever's forward pass: one pass for queries and passages, equal to encoding them apart."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from train_fixtures import synthetic_task, tiny_backbone, training_config, write_groups

from llm_retrieval.modeling import load_tokenizer
from llm_retrieval.train import checkpoint
from llm_retrieval.train.dataset import read_groups, sample_group
from llm_retrieval.train.loss import info_nce
from llm_retrieval.train.memory import GIB, ModelDims, use_checkpointing
from llm_retrieval.train.memory import estimate as estimate_memory
from llm_retrieval.train.model import Batcher, trainable_retriever
from llm_retrieval.train.packing import PackedRowTooLong, PackingUnsupported, check_attention, pack, padded_tokens


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("model")
    task = synthetic_task()
    backbone = tiny_backbone(root / "bb", list(task["docs"].values()) + list(task["queries"].values()))
    groups = read_groups(write_groups(task, root / "g.parquet"))
    return {"backbone": str(backbone), "groups": groups}


def _retriever(tiny, cfg):
    torch.manual_seed(0)
    model = trainable_retriever(tiny["backbone"], "qwen2", cfg["lora"])
    # LoRA B starts at zero, which would make every LoRA-A gradient zero: perturb it.
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.05)
    return model


def _inputs(tiny, cfg, n_queries=4):
    batcher = Batcher(load_tokenizer(tiny["backbone"]), cfg["max_length"])
    groups = tiny["groups"][:n_queries]
    passages = [p for i, g in enumerate(groups) for p in sample_group(g, cfg["group_size"], 0, 0, i)]
    return (
        *batcher.tensors("query", [g.query for g in groups]),
        *batcher.tensors("passage", batcher.passage_texts(passages)),
    )


def _loss_and_lora_grads(model, loss):
    model.zero_grad()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_one_forward_pass_gives_the_two_pass_loss_and_lora_gradients(tiny):
    cfg = training_config()
    model = _retriever(tiny, cfg)
    q_ids, q_mask, p_ids, p_mask = _inputs(tiny, cfg)
    assert q_ids.size(1) != p_ids.size(1)  # the widths differ, so the one pass pads the queries

    two_pass = _loss_and_lora_grads(
        model, info_nce(model.embed(q_ids, q_mask), model.embed(p_ids, p_mask), cfg["temperature"], gather=False)
    )
    calls = []
    hook = model.backbone.register_forward_hook(lambda *a: calls.append(1))
    one_pass = _loss_and_lora_grads(
        model, info_nce(*model(q_ids, q_mask, p_ids, p_mask), cfg["temperature"], gather=False)
    )
    hook.remove()

    assert len(calls) == 1
    torch.testing.assert_close(one_pass[0], two_pass[0], rtol=1e-5, atol=1e-6)
    assert one_pass[1].keys() == two_pass[1].keys() and len(one_pass[1]) == 28
    assert any(g.abs().sum() > 0 for g in one_pass[1].values())
    for name, grad in one_pass[1].items():
        torch.testing.assert_close(grad, two_pass[1][name], rtol=1e-4, atol=1e-6, msg=name)


def test_packed_row_gives_the_padded_embeddings(tiny):
    cfg = training_config()
    model = _retriever(tiny, cfg).eval()
    batcher = Batcher(load_tokenizer(tiny["backbone"]), cfg["max_length"])
    groups = tiny["groups"][:4]
    passages = batcher.passage_texts([p for i, g in enumerate(groups) for p in sample_group(g, 4, 0, 0, i)])
    queries = [g.query for g in groups]
    packed = batcher.packed(queries, passages)

    q_pad, p_pad = model(*batcher.tensors("query", queries), *batcher.tensors("passage", passages))
    q_packed, p_packed = model(packed)
    torch.testing.assert_close(q_packed, q_pad, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(p_packed, p_pad, rtol=1e-5, atol=1e-5)
    # No pads in the row, and positions restart with every sequence.
    lengths = packed.cu_seqlens.diff()
    assert packed.real_tokens == int(lengths.sum()) and len(lengths) == 4 + 16
    assert (packed.position_ids[0, packed.cu_seqlens[:-1].long()] == 0).all()
    assert (packed.input_ids[0, packed.last] == load_tokenizer(tiny["backbone"]).eos_token_id).all()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_on_a_gpu_packed_and_padded_embeddings_agree_in_bf16(tiny):
    """The varlen path (flash-attention where installed, else SDPA with a block-diagonal mask) in bf16
    against padded batches: cosine above 0.999 per embedding (benchmarks/gpu_acceptance.sh runs it)."""
    cfg = training_config()
    torch.manual_seed(0)
    model = trainable_retriever(tiny["backbone"], "qwen2", cfg["lora"], "bfloat16", compute_device="cuda")
    model = model.to("cuda").eval()
    batcher = Batcher(load_tokenizer(tiny["backbone"]), cfg["max_length"])
    groups = tiny["groups"][:4]
    passages = batcher.passage_texts([p for i, g in enumerate(groups) for p in sample_group(g, 4, 0, 0, i)])
    queries = [g.query for g in groups]
    with torch.no_grad():
        padded = model(
            *[t.to("cuda") for t in (*batcher.tensors("query", queries), *batcher.tensors("passage", passages))]
        )
        packed = model(batcher.packed(queries, passages).to("cuda"))
    for a, b in zip(packed, padded):
        cosine = torch.nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)
        assert cosine.min() > 0.999, cosine.min()


def test_packing_computes_only_real_tokens_on_ms_marco_like_lengths():
    # Passage lengths spread like MS MARCO's under Qwen's tokenizer (median ~70, long tail to the 156 cap).
    g = torch.Generator().manual_seed(0)
    passages = [[1] * int(n) for n in torch.clamp(torch.randn(16 * 8, generator=g) * 25 + 75, 20, 156)]
    queries = [[1] * int(n) for n in torch.clamp(torch.randn(8, generator=g) * 4 + 12, 5, 32)]
    real = sum(map(len, passages + queries))
    assert pack(queries, passages).input_ids.numel() / real <= 1.1
    assert padded_tokens([len(q) for q in queries], [len(p) for p in passages]) / real > 1.5  # what padding cost


def test_packing_errors_are_named():
    with pytest.raises(PackedRowTooLong, match="rank 1: 1 queries and 2 passages pack into 30 tokens.*=20"):
        pack([[1] * 10], [[1] * 10, [1] * 10], max_tokens=20, where="rank 1")
    with pytest.raises(PackingUnsupported, match="'my_kernel'.*packing: false"):
        check_attention("my_kernel")
    assert check_attention("sdpa").startswith("sdpa") and "varlen" in check_attention("flash_attention_2")


def test_checkpoint_from_another_stage_or_packing_mode_is_refused(tmp_path):
    (tmp_path / checkpoint.MANIFEST).write_text(
        json.dumps({"step": 3, "world_size": 1, "zero_stage": 3, "packing": False})
    )
    for expect, name in (
        ({"zero_stage": 2, "packing": False}, "zero_stage=3"),
        ({"zero_stage": 3, "packing": True}, "packing=False"),
    ):
        with pytest.raises(checkpoint.CheckpointMismatch, match=f"training.{name}, this run has"):
            checkpoint.load(None, tmp_path, expect=expect)


def test_checkpointing_auto_is_on_only_when_the_activations_would_not_fit():
    qwen7b = ModelDims(hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, vocab=152064)
    assert qwen7b.body_params == pytest.approx(6.53e9, rel=1e-3)  # N of the FLOP convention
    lora = {"rank": 32, "dropout": 0.1, "target_modules": training_config()["lora"]["target_modules"]}
    protocol = {"per_device_batch": 1, "group_size": 16, "max_length": {"query": 32, "passage": 156}, "lora": lora}
    h100 = 80 * GIB
    on, estimate = use_checkpointing("auto", qwen7b, protocol, 8, 3, h100)
    assert not on and estimate.fits() and "of 80.0 GiB" in estimate.describe()  # ~2.5K tokens fit easily
    on, estimate = use_checkpointing("auto", qwen7b, {**protocol, "per_device_batch": 4}, 8, 3, h100)
    assert on and estimate.fits()  # ~10K tokens: only with recomputation
    assert use_checkpointing(True, qwen7b, protocol, 8, 3, h100)[0]
    assert not use_checkpointing(False, qwen7b, {**protocol, "per_device_batch": 4}, 8, 3, h100)[0]
    assert not use_checkpointing("auto", qwen7b, protocol, 8, 3, None)[0]  # CPU: nothing to decide
    # ZeRO-3 holds 1/world of the weights, ZeRO-2 all of them.
    z2 = estimate_memory(qwen7b, lora, 2528, 8, 2, checkpointing=False)
    z3 = estimate_memory(qwen7b, lora, 2528, 8, 3, checkpointing=False)
    assert z2.weights > 4 * z3.weights and z2.activations == z3.activations


def test_zero_stage_auto_takes_stage_2_where_its_memory_estimate_fits_else_3():
    from llm_retrieval.train.memory import zero_stage_for

    qwen7b = ModelDims(hidden=3584, intermediate=18944, layers=28, heads=28, kv_heads=4, vocab=152064)
    lora = {"rank": 32, "dropout": 0.1, "target_modules": training_config()["lora"]["target_modules"]}
    protocol = {
        "per_device_batch": 1,
        "group_size": 16,
        "max_length": {"query": 32, "passage": 156},
        "lora": lora,
        "gradient_checkpointing": "auto",
        "zero_stage": "auto",
    }
    stage2 = use_checkpointing("auto", qwen7b, protocol, 8, 2, 80 * GIB)[1]
    assert stage2.fits() and stage2.weights > 13 * GIB  # the whole bf16 backbone on every GPU, and still fits
    assert zero_stage_for(protocol, qwen7b, 8, 80 * GIB) == 2  # a 7B on 8 x 80 GB: never gather the backbone
    assert zero_stage_for(protocol, qwen7b, 8, 16 * GIB) == 3  # the full bf16 copy (15 GB) does not fit
    assert zero_stage_for(protocol, qwen7b, 8, None) == 2  # CPU: no device memory to run out of
    assert zero_stage_for({**protocol, "zero_stage": 3}, qwen7b, 8, 80 * GIB) == 3  # a number is taken as given


def test_the_paper_config_trains_with_zero_stage_auto():
    import yaml

    from llm_retrieval.config_schema import validate_config

    path = Path(__file__).resolve().parents[1] / "config/config.yaml"
    config = validate_config(yaml.safe_load(path.read_text()), path.parents[1] / "workflow/schemas/config.schema.yaml")
    assert config["training"]["zero_stage"] == "auto"


def test_a_zero3_stand_in_off_the_ranks_device_is_a_named_error_before_deepspeed_initialize():
    from llm_retrieval.modeling import MisplacedPartitionError, check_stand_ins_on

    model = torch.nn.Linear(2, 2)
    for p in model.parameters():
        p.ds_id = 0  # what zero.Init leaves on each stand-in
    assert check_stand_ins_on(model, torch.device("cpu")) == 2
    with pytest.raises(MisplacedPartitionError, match="2 of 2 ZeRO-3 stand-ins are on cpu, not cuda:0"):
        check_stand_ins_on(model, torch.device("cuda", 0))
