"""GPU code paths seen from the CPU (issue 23): what attention a model is loaded with, what the
encode loop asks of the GPU, which device each worker binds. Fakes record the calls; the
``gpu``-marked tests check the same on a real GPU."""

from __future__ import annotations

import sys
import types

import pytest
import torch
from workflow_helpers import encoding_section

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


@pytest.mark.parametrize(
    ("device", "dtype", "expected"),
    [
        ("cuda:0", "bfloat16", "flash_attention_2"),
        ("cuda:0", "float16", "flash_attention_2"),
        ("cuda:0", "float32", "sdpa"),  # flash-attn refuses fp32
        ("cpu", "bfloat16", "sdpa"),  # and has no CPU kernel
    ],
)
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


# --- the encode loop ------------------------------------------------------------------


def test_last_token_pooling_never_waits_for_the_device(monkeypatch):
    """bool(mask[:, -1].all()) copied a value to the host per batch: a GPU sync in the encode loop."""
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    expected = (torch.stack([hidden[0, 1], hidden[1, 3]]), hidden[:, -1])

    def host_round_trip(self, *args):
        raise AssertionError("a device value read on the host")

    for name in ("__bool__", "item", "tolist", "__int__", "__index__"):
        monkeypatch.setattr(torch.Tensor, name, host_round_trip)
    pooled = (modeling.last_token_pool(hidden, right), modeling.last_token_pool(hidden, left))
    monkeypatch.undo()
    assert torch.equal(pooled[0], expected[0]) and torch.equal(pooled[1], expected[1])


class RecordingModel:
    """Wraps the encoder's model: records each forward's keyword arguments."""

    def __init__(self, model):
        self.model, self.calls = model, []

    def __call__(self, **kwargs):
        self.calls.append(kwargs)
        return self.model(**kwargs)


ENCODING = encoding_section(
    {
        "prompts": {"query": 'Query: "{text}".', "passage": 'Passage: "{text}".', "assistant_prefill": '"'},
        "normalize": True,
        "dtype": "float32",
        "batch_tokens": 256,
        "max_text_tokens": {"query": 16, "passage": 24},
    }
)


@pytest.mark.parametrize("share_prefix", [False, True])
def test_encode_forward_passes_keep_no_kv_cache(tiny_backbones, share_prefix):
    from llm_retrieval.encoder import Encoder, EncoderSpec

    encoder = Encoder(EncoderSpec(tiny_backbones["qwen2"], {**ENCODING, "share_prefix": share_prefix}), "cpu")
    encoder.model = RecordingModel(encoder.model)
    encoder.encode("passage", ["one text", "a second, longer text to encode"])
    batches = [c for c in encoder.model.calls if "attention_mask" in c]  # not the shared prefix's one pass
    assert batches and all(c.get("use_cache") is False for c in batches)


def test_each_multi_gpu_encode_worker_binds_its_gpu_before_loading_the_model(monkeypatch):
    from llm_retrieval import encode

    events = []
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: events.append(("set_device", str(device))))

    class Loaded:
        def __init__(self, spec, device):
            events.append(("load", device))

    monkeypatch.setattr(encode, "Encoder", Loaded)
    encode._encode_chunks_worker(1, ["cuda:0", "cuda:1"], [], "corpus", "parts", None, False)
    assert events == [("set_device", "cuda:1"), ("load", "cuda:1")]
    events.clear()
    encode._encode_chunks_worker(0, ["cpu"], [], "corpus", "parts", None, False)
    assert events == [("load", "cpu")]
