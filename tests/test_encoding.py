"""Prompts, pooling, shard encoding and its resumption, on tiny real-architecture models."""

import numpy as np
import pytest
import torch
from workflow_helpers import encoding_section

from llm_retrieval.data.canonical import write_corpus
from llm_retrieval.embeddings import read_embeddings
from llm_retrieval.encode import QueriesTask, encode_corpus_shard, encode_queries, shard_bounds
from llm_retrieval.encoder import Encoder, EncoderSpec
from llm_retrieval.modeling import last_token_pool, load_text_model, load_tokenizer
from llm_retrieval.prompts import PrefixEosFormatter, PromptRepsFormatter

PROMPTS = {
    "query": 'Query: "{text}". Use one word to represent the query in a retrieval task. Make sure your word is in lowercase.',
    "passage": 'Passage: "{text}". Use one word to represent the passage in a retrieval task. Make sure your word is in lowercase.',
    "assistant_prefill": 'The word is: "',
}
ENCODING = encoding_section(
    {
        "prompts": PROMPTS,
        "normalize": True,
        "dtype": "float32",
        "batch_tokens": 256,
        "max_text_tokens": {"query": 16, "passage": 24},
    }
)


def test_prompt_is_chat_template_user_turn_with_prefilled_assistant(tiny_backbones):
    tok = load_tokenizer(tiny_backbones["qwen2"]["path"])
    ids = PromptRepsFormatter(tok, PROMPTS).token_ids("passage", ["def add(a, b): return a + b"], 512)[0]
    text = tok.decode(ids)
    assert text.startswith('<|im_start|>user\nPassage: "def add(a, b): return a + b". Use one word')
    assert text.endswith('<|im_end|>\n<|im_start|>assistant\nThe word is: "')
    assert tok.decode(ids[-1:]).endswith('"')  # the pooled token is the closing quote


def test_truncation_cuts_the_text_never_the_template(tiny_backbones):
    tok = load_tokenizer(tiny_backbones["qwen2"]["path"])
    fmt = PromptRepsFormatter(tok, PROMPTS)
    short, long = fmt.token_ids("query", ["x", "word " * 500], 8)
    assert len(long) - len(short) == 8 - len(tok("x", add_special_tokens=False)["input_ids"])
    assert long[-12:] == short[-12:]


def test_strip_think_removes_an_opened_think_block(tiny_backbones):
    tok = load_tokenizer(tiny_backbones["qwen2"]["path"])
    tok.chat_template = tok.chat_template + "{% if add_generation_prompt %}<think>\n{% endif %}"
    with_think = tok.decode(PromptRepsFormatter(tok, PROMPTS).token_ids("query", ["q"], 8)[0])
    stripped = tok.decode(PromptRepsFormatter(tok, PROMPTS, strip_think=True).token_ids("query", ["q"], 8)[0])
    assert "<think>" in with_think and "<think>" not in stripped
    assert stripped.endswith('assistant\nThe word is: "')


def test_supervised_format_appends_eos(tiny_backbones):
    tok = load_tokenizer(tiny_backbones["qwen2"]["path"])
    ids = PrefixEosFormatter(tok).token_ids("query", ["where is x"], 32)[0]
    assert tok.decode(ids).startswith("Query: where is x") and ids[-1] == tok.eos_token_id


@pytest.mark.parametrize("arch", ["qwen2", "qwen2_5_vl"])
def test_padded_batch_pools_the_same_vector_as_single_sequences(tiny_backbones, arch):
    record = tiny_backbones[arch]
    encoder = Encoder(EncoderSpec(record, ENCODING), "cpu")
    texts = ["a short one", "a much longer passage about parsing command line arguments in python"]
    batched = encoder.encode("passage", texts)
    singles = np.vstack([encoder.encode("passage", [t]) for t in texts])
    np.testing.assert_allclose(batched, singles, atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(batched, axis=1), 1.0, atol=1e-5)


def test_last_token_pool_right_and_left_padding():
    hidden = torch.arange(2 * 4 * 3, dtype=torch.float32).reshape(2, 4, 3)
    right = torch.tensor([[1, 1, 0, 0], [1, 1, 1, 1]])
    assert torch.equal(last_token_pool(hidden, right), torch.stack([hidden[0, 1], hidden[1, 3]]))
    left = torch.tensor([[0, 0, 1, 1], [1, 1, 1, 1]])
    assert torch.equal(last_token_pool(hidden, left), hidden[:, -1])


def test_vl_backbone_loads_its_language_model_only(tiny_backbones):
    model = load_text_model(tiny_backbones["qwen2_5_vl"]["path"], "qwen2_5_vl")
    names = {name for name, _ in model.named_modules()}
    assert not any("visual" in n for n in names) and "layers.0.self_attn.q_proj" in names


def test_shards_cover_the_corpus_exactly_once():
    bounds = [shard_bounds(10, s, 3) for s in range(3)]
    assert bounds == [(0, 3), (3, 6), (6, 10)]
    with pytest.raises(ValueError):
        shard_bounds(10, 3, 3)


def test_shard_encoding_resumes_from_finished_chunks(tiny_backbones, tmp_path, monkeypatch):
    corpus = tmp_path / "corpus.parquet"
    write_corpus(
        corpus,
        ({"id": f"d{i}", "title": "t", "text": f"document number {i} " * (i % 5 + 1)} for i in range(40)),
        batch_size=7,
    )  # several row groups
    spec = EncoderSpec(tiny_backbones["qwen2"], ENCODING)
    out = tmp_path / "shard-1.parquet"
    reference = tmp_path / "ref.parquet"
    encode_corpus_shard(corpus, 1, 2, reference, spec, use_title=True, chunk_rows=6)

    import llm_retrieval.encoder as enc

    calls = []
    original = enc.Encoder.run

    def dying_after_two_chunks(self, prepared, desc=""):
        calls.append(prepared.count)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed")
        return original(self, prepared, desc)

    monkeypatch.setattr(enc.Encoder, "run", dying_after_two_chunks)
    with pytest.raises(KeyboardInterrupt):
        encode_corpus_shard(corpus, 1, 2, out, spec, use_title=True, chunk_rows=6)
    assert not out.exists() and len(list((tmp_path / "shard-1.parquet.parts").iterdir())) == 2
    calls.clear()
    encode_corpus_shard(corpus, 1, 2, out, spec, use_title=True, chunk_rows=6)
    assert len(calls) == 2  # 20 rows in chunks of 6: 4 chunks, 2 already done
    ids, vectors = read_embeddings(out)
    ref_ids, ref_vectors = read_embeddings(reference)
    assert ids == ref_ids == [f"d{i}" for i in range(20, 40)]
    np.testing.assert_allclose(vectors, ref_vectors, atol=1e-6)
    assert not (tmp_path / "shard-1.parquet.parts").exists()


@pytest.mark.slow
def test_one_process_per_device_gives_the_same_shard(tiny_backbones, tmp_path):
    """The multi-GPU path (one spawned process per device) run with two CPU 'devices'."""
    corpus = tmp_path / "corpus.parquet"
    write_corpus(corpus, ({"id": f"d{i}", "title": "", "text": f"text {i} " * (i % 7 + 1)} for i in range(30)))
    spec = EncoderSpec(tiny_backbones["qwen2"], ENCODING)
    encode_corpus_shard(corpus, 0, 1, tmp_path / "single.parquet", spec, use_title=False, chunk_rows=8, devices=["cpu"])
    encode_corpus_shard(
        corpus, 0, 1, tmp_path / "multi.parquet", spec, use_title=False, chunk_rows=8, devices=["cpu", "cpu"]
    )
    single_ids, single = read_embeddings(tmp_path / "single.parquet")
    multi_ids, multi = read_embeddings(tmp_path / "multi.parquet")
    assert single_ids == multi_ids == [f"d{i}" for i in range(30)]
    np.testing.assert_allclose(single, multi, atol=1e-6)


def test_first_shard_job_encodes_the_queries_with_the_same_model_load(tiny_backbones, tmp_path, monkeypatch):
    import pyarrow as pa

    import llm_retrieval.encoder as enc
    from llm_retrieval.atomic import write_parquet

    corpus, queries = tmp_path / "corpus.parquet", tmp_path / "queries.parquet"
    write_corpus(corpus, ({"id": f"d{i}", "title": "", "text": f"text {i} " * (i % 4 + 1)} for i in range(12)))
    write_parquet(
        queries,
        pa.table(
            {
                "id": ["q1", "q2", "q3"],
                "text": ["find a", "find b", "train only"],
                "query_set": ["test", "test", "train"],
            }
        ),
    )
    spec = EncoderSpec(tiny_backbones["qwen2"], ENCODING)
    encode_queries(queries, tmp_path / "alone.parquet", spec, ["test"])
    loads = []
    original = enc.Encoder.__init__

    def counting(self, *args, **kwargs):
        loads.append(1)
        original(self, *args, **kwargs)

    monkeypatch.setattr(enc.Encoder, "__init__", counting)
    task = QueriesTask(str(queries), str(tmp_path / "queries-out.parquet"), ("test",))
    assert (
        encode_corpus_shard(
            corpus, 0, 2, tmp_path / "shard-0.parquet", spec, use_title=False, queries=task, estimated_documents=12
        )
        == 6
    )
    assert len(loads) == 1
    ids, vectors = read_embeddings(tmp_path / "queries-out.parquet")
    alone_ids, alone = read_embeddings(tmp_path / "alone.parquet")
    assert ids == alone_ids == ["q1", "q2"]
    np.testing.assert_allclose(vectors, alone, atol=1e-6)


@pytest.mark.parametrize("arch", ["qwen2", "qwen2_5_vl"])
def test_shared_prefix_computed_once_gives_the_vectors_of_the_full_computation(tiny_backbones, arch):
    """The chat-template prefix's keys/values computed once and expanded per batch (1-D positions for
    Qwen2, 3-D multimodal rotary positions for Qwen2.5-VL) give the full forward pass's vectors."""
    texts = [
        "x",
        "a short one",
        "parse the command line arguments and return a namespace " * 3,
        "def add(a, b):\n    return a + b",
        "",
    ]
    full = Encoder(EncoderSpec(tiny_backbones[arch], {**ENCODING, "share_prefix": False}), "cpu")
    shared = Encoder(EncoderSpec(tiny_backbones[arch], {**ENCODING, "share_prefix": True}), "cpu")
    for kind in ("query", "passage"):
        prepared = shared.prepare(kind, texts)
        assert len(prepared.prefix) > 5 and prepared.computed < full.prepare(kind, texts).computed
        # within 1e-4 as asked; 1e-5 here because wrong rotary positions already differ by ~1e-4 on a tiny model
        np.testing.assert_allclose(shared.run(prepared), full.encode(kind, texts), atol=1e-5)
    # the supervised format shares nothing (its prefix is the adapter's training input)
    assert (
        Encoder(
            EncoderSpec(
                tiny_backbones[arch], {**ENCODING, "share_prefix": True}, max_length={"query": 16, "passage": 24}
            ),
            "cpu",
        ).shared_prefix("query")
        == []
    )
