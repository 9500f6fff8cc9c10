"""Encoding on a CUDA GPU (skipped without one): bf16 against fp32, and the shared prefix cache on the GPU."""

import numpy as np
import pytest
import torch
from test_encoding import ENCODING

from llm_retrieval.encoder import Encoder, EncoderSpec

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]

TEXTS = ["a short one", "def add(a, b):\n    return a + b", "parse the command line arguments " * 5, "x"]
# bf16 keeps 8 bits of mantissa: on unit vectors a 2-layer model's outputs agree to about 1e-2 per
# component and better than 0.999 in cosine; the tolerance stated by the GPU check.
BF16_ATOL, BF16_MIN_COSINE = 3e-2, 0.999


@pytest.mark.parametrize("arch", ["qwen2", "qwen2_5_vl"])
def test_bf16_vectors_match_fp32_within_the_stated_tolerance(tiny_backbones, arch):
    fp32 = Encoder(EncoderSpec(tiny_backbones[arch], {**ENCODING, "dtype": "float32"}), "cuda:0")
    bf16 = Encoder(EncoderSpec(tiny_backbones[arch], {**ENCODING, "dtype": "bfloat16"}), "cuda:0")
    a, b = fp32.encode("passage", TEXTS), bf16.encode("passage", TEXTS)
    np.testing.assert_allclose(b, a, atol=BF16_ATOL)
    assert (a * b).sum(axis=1).min() > BF16_MIN_COSINE


@pytest.mark.parametrize("arch", ["qwen2", "qwen2_5_vl"])
def test_prefix_cache_on_the_gpu_gives_the_full_computation(tiny_backbones, arch):
    spec = {**ENCODING, "dtype": "float32"}
    full = Encoder(EncoderSpec(tiny_backbones[arch], {**spec, "share_prefix": False}), "cuda:0")
    shared = Encoder(EncoderSpec(tiny_backbones[arch], {**spec, "share_prefix": True}), "cuda:0")
    for kind in ("query", "passage"):
        np.testing.assert_allclose(shared.encode(kind, TEXTS), full.encode(kind, TEXTS), atol=1e-4)
