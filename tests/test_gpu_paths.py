"""GPU code paths seen from the CPU (issue 23): what attention a model is loaded with, what the
encode loop asks of the GPU, which device each worker binds. Fakes record the calls; the
``gpu``-marked tests check the same on a real GPU."""

from __future__ import annotations

import sys
import types

import pytest
import torch

from llm_retrieval import modeling


@pytest.fixture
def flash_attn_installed(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", types.ModuleType("flash_attn"))


class RecordingLoad:
    """Stands in for AutoModel.from_pretrained: records its keyword arguments."""

    def __init__(self):
        self.kwargs = None

    def __call__(self, path, **kwargs):
        self.kwargs = kwargs
        return torch.nn.Linear(2, 2)


@pytest.mark.parametrize(("device", "dtype", "expected"), [
    ("cuda:0", "bfloat16", "flash_attention_2"),
    ("cuda:0", "float16", "flash_attention_2"),
    ("cuda:0", "float32", "sdpa"),  # flash-attn refuses fp32
    ("cpu", "bfloat16", "sdpa"),  # and has no CPU kernel
])
def test_flash_attention_is_chosen_only_for_half_precision_on_cuda(flash_attn_installed, device, dtype, expected):
    assert modeling.attention_implementation(device, dtype) == expected


def test_without_flash_attn_installed_cuda_bf16_uses_sdpa(monkeypatch):
    monkeypatch.setitem(sys.modules, "flash_attn", None)  # import raises ImportError
    assert modeling.attention_implementation("cuda:0", "bfloat16") == "sdpa"


def test_a_float32_model_on_cuda_is_loaded_without_flash_attention(flash_attn_installed, monkeypatch):
    load = RecordingLoad()
    monkeypatch.setattr(modeling.AutoModel, "from_pretrained", load)
    monkeypatch.setattr(torch.nn.Module, "to", lambda self, *a, **k: self)  # no GPU to move to here
    modeling.load_text_model("tiny", "qwen2", "float32", "cuda:0")
    assert load.kwargs["attn_implementation"] == "sdpa" and load.kwargs["dtype"] is torch.float32
    modeling.load_text_model("tiny", "qwen2", "bfloat16", "cuda:0")
    assert load.kwargs["attn_implementation"] == "flash_attention_2"
