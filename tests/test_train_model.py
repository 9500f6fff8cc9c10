"""The retriever's forward pass: one pass for queries and passages, equal to encoding them apart."""
from __future__ import annotations

import pytest
import torch

from llm_retrieval.modeling import load_tokenizer
from llm_retrieval.train.dataset import read_groups, sample_group
from llm_retrieval.train.loss import info_nce
from llm_retrieval.train.model import Batcher, trainable_retriever

from train_fixtures import synthetic_task, tiny_backbone, training_config, write_groups


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
    return (*batcher.tensors("query", [g.query for g in groups]),
            *batcher.tensors("passage", batcher.passage_texts(passages)))


def _loss_and_lora_grads(model, loss):
    model.zero_grad()
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def test_one_forward_pass_gives_the_two_pass_loss_and_lora_gradients(tiny):
    cfg = training_config()
    model = _retriever(tiny, cfg)
    q_ids, q_mask, p_ids, p_mask = _inputs(tiny, cfg)
    assert q_ids.size(1) != p_ids.size(1)  # the widths differ, so the one pass pads the queries

    two_pass = _loss_and_lora_grads(model, info_nce(model.embed(q_ids, q_mask), model.embed(p_ids, p_mask),
                                                    cfg["temperature"], gather=False))
    calls = []
    hook = model.backbone.register_forward_hook(lambda *a: calls.append(1))
    one_pass = _loss_and_lora_grads(model, info_nce(*model(q_ids, q_mask, p_ids, p_mask), cfg["temperature"],
                                                    gather=False))
    hook.remove()

    assert len(calls) == 1
    torch.testing.assert_close(one_pass[0], two_pass[0], rtol=1e-5, atol=1e-6)
    assert one_pass[1].keys() == two_pass[1].keys() and len(one_pass[1]) == 28
    assert any(g.abs().sum() > 0 for g in one_pass[1].values())
    for name, grad in one_pass[1].items():
        torch.testing.assert_close(grad, two_pass[1][name], rtol=1e-4, atol=1e-6, msg=name)
