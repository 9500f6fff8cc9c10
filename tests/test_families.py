"""Every encoder family of the one table (encoders.FAMILIES), each on a tiny random build loaded
through from_pretrained: pooling, special tokens, input formats, LoRA targets, position limits,
and that training and encoding embed a text identically."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
import yaml
from workflow_helpers import ROOT

from llm_retrieval import encoders
from llm_retrieval.encoder import Encoder, EncoderSpec
from llm_retrieval.modeling import load_text_model, load_tokenizer
from llm_retrieval.prompts import FormatError
from llm_retrieval.tiny_models import STYLES, TINY_ST_PROMPTS, build_tiny_model, stdlib_texts

BUILD = {
    "seed": 0,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "vocab_size": 700,
    "max_position_embeddings": 1024,
}
PROMPTS = {
    "query": 'Query: "{text}". Use one word to represent the query.',
    "passage": 'Passage: "{text}". Use one word to represent the passage.',
    "assistant_prefill": 'The word is: "',
    "plain_template": "{user}\n",
}
ENCODING = {
    "normalize": True,
    "dtype": "float32",
    "batch_tokens": 8192,
    "share_prefix": True,
    "max_text_tokens": {"query": 24, "passage": 48},
    "prompts": PROMPTS,
}
SUPERVISED = {"query": 20, "passage": 40}
TEXTS = [
    "def add(a, b): return a + b",
    "Sort a list in place and return None.",
    "x",
    "Return the number of items in a container; raise TypeError when it has no length.",
]
FAMILIES = list(encoders.FAMILIES)
ADDS_BOS = {name for name, style in STYLES.items() if style.adds_bos}  # llama, mistral, gemma, gemma2


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    texts = list(stdlib_texts(limit_files=25))
    return {name: build_tiny_model(name, BUILD, root / name, texts) for name in FAMILIES}


def test_the_schema_accepts_exactly_the_family_table():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text(encoding="utf-8"))
    assert schema["$defs"]["backbone"]["properties"]["architecture"]["enum"] == FAMILIES


def test_an_unknown_family_is_a_named_error_listing_the_known_ones():
    with pytest.raises(
        encoders.UnknownFamilyError, match=r"unknown architecture 'falcon' \(known: qwen2, qwen3, llama"
    ):
        encoders.family("falcon")
    with pytest.raises(encoders.UnknownFamilyError, match="encoders.FAMILIES"):
        load_text_model("/nonexistent", "falcon")


def _expected_pooling(name: str) -> str:
    return {"bert": "cls", "t5": "mean", "sentence_transformers": "mean"}.get(name, "last")


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_pools_the_hidden_states_its_table_names(built, name):
    record = built[name]
    assert encoders.pooling_of(record) == _expected_pooling(name)
    supervised = None if encoders.family(name).zero_shot else SUPERVISED
    encoder = Encoder(
        EncoderSpec(record, {**ENCODING, "normalize": False, "share_prefix": False}, None, supervised), "cpu"
    )
    vectors = encoder.encode("passage", TEXTS)
    ids = encoder.formatter.token_ids("passage", TEXTS, encoder.text_budget["passage"])
    for row, seq in enumerate(ids):  # each text alone, unpadded: the named position (or the mean) by hand
        with torch.no_grad():
            hidden = encoder.model(input_ids=torch.tensor([seq])).last_hidden_state[0]
        by_hand = {"last": hidden[-1], "cls": hidden[0], "mean": hidden.mean(0)}[_expected_pooling(name)]
        if encoders.normalizes(record, False):  # a sentence-transformers model's own Normalize module
            by_hand = torch.nn.functional.normalize(by_hand, dim=-1)
        np.testing.assert_allclose(vectors[row], by_hand.numpy(), atol=1e-5)
    assert encoders.normalizes(record, False) == (name == "sentence_transformers")


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_formats_supervised_inputs_with_its_own_special_tokens(built, name):
    tok = load_tokenizer(built[name]["path"])
    spec = EncoderSpec(built[name], ENCODING, None, SUPERVISED)
    formatter, budgets = spec.formatter_and_budgets(tok)
    ids = formatter.token_ids("query", ["sort a list " * 30], budgets["query"])[0]
    assert len(ids) == SUPERVISED["query"]  # truncated text, whole template
    short = formatter.token_ids("query", ["sort a list"], budgets["query"])[0]
    if name in ("bert", "sentence_transformers"):
        assert short[0] == tok.cls_token_id and short[-1] == tok.sep_token_id
        if name == "sentence_transformers":  # its own query prompt, from config_sentence_transformers.json
            prompt = tok(TINY_ST_PROMPTS["query"], add_special_tokens=False)["input_ids"]
            assert short[1 : 1 + len(prompt)] == prompt
    elif name == "t5":
        assert short[-1] == tok.eos_token_id and tok.decode(short[:-1]) == "sort a list"
    else:  # RepLLaMA: [BOS] Query: text EOS, the BOS exactly where the family's tokenizer adds one
        assert short[-1] == tok.eos_token_id
        assert (short[0] == tok.bos_token_id) == (name in ADDS_BOS)
        if name in ADDS_BOS:
            assert short.count(tok.bos_token_id) == 1
        body = short[1:-1] if name in ADDS_BOS else short[:-1]
        assert tok.decode(body) == "Query: sort a list"


@pytest.mark.parametrize("name", [n for n in FAMILIES if encoders.family(n).kind == "decoder"])
def test_each_decoder_reads_promptreps_through_its_chat_template_or_the_plain_fallback(built, name):
    tok = load_tokenizer(built[name]["path"])
    formatter, budgets = EncoderSpec(built[name], ENCODING).formatter_and_budgets(tok)
    ids = formatter.token_ids("query", ["sort a list"], budgets["query"])[0]
    text = tok.decode(ids)
    assert text.endswith('The word is: "') and 'Query: "sort a list"' in text
    if name in ADDS_BOS:  # once, whether the template renders it (Gemma, Mistral) or the tokenizer adds it
        assert ids[0] == tok.bos_token_id and ids.count(tok.bos_token_id) == 1
    if tok.chat_template is None:  # Llama-2 base, Phi: encoding.prompts.plain_template
        assert tok.decode(ids[1:] if name in ADDS_BOS else ids) == (
            PROMPTS["query"].replace("{text}", "sort a list") + "\n" + PROMPTS["assistant_prefill"]
        )
        with pytest.raises(FormatError, match="no chat template; set encoding.prompts.plain_template"):
            EncoderSpec(
                built[name], {**ENCODING, "prompts": {k: v for k, v in PROMPTS.items() if k != "plain_template"}}
            ).formatter_and_budgets(tok)


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_maps_the_qwen_lora_names_onto_its_own_modules(built, name):
    model = load_text_model(built[name]["path"], name)
    modules = [n for n, _ in model.named_modules()]
    targets = encoders.lora_targets(name, encoders.PROJECTIONS, built[name]["path"])
    for projection in encoders.PROJECTIONS:
        one = encoders.lora_targets(name, [projection], built[name]["path"])
        matched = [m for m in modules if (re.fullmatch(one, m) if isinstance(one, str) else m.endswith("." + one[0]))]
        assert matched, f"{name}: {projection} matches no module"
        assert all(isinstance(dict(model.named_modules())[m], torch.nn.Linear) for m in matched)
    if isinstance(targets, str):
        assert not any(re.fullmatch(targets, m) for m in modules if "embed" in m or "pooler" in m)
    with pytest.raises(encoders.LoraTargetError, match=r"\['c_attn'\] have no counterpart in "):
        encoders.lora_targets(name, ["q_proj", "c_attn"], built[name]["path"])


@pytest.mark.parametrize("name", FAMILIES)
def test_each_family_reads_its_position_limit_from_its_config_and_refuses_longer_inputs(built, name):
    limit = encoders.folder_position_limit(built[name])
    assert limit == (None if name == "t5" else BUILD["max_position_embeddings"])
    too_long = {"query": 16, "passage": 1500}
    spec = EncoderSpec(built[name], ENCODING, None, too_long)
    if limit is None:  # T5: relative positions, no limit
        assert Encoder(spec, "cpu").text_budget["passage"] > 1024
    else:
        with pytest.raises(
            encoders.PositionLimitError, match=f"beyond the position limit of .* \\({limit}, its config.json\\)"
        ):
            Encoder(spec, "cpu")


@pytest.mark.parametrize("name", FAMILIES)
def test_training_embeds_a_text_exactly_as_encoding_does(built, name):
    from llm_retrieval.train.model import Batcher, trainable_retriever

    record = built[name]
    lora = {"rank": 4, "alpha": 8, "dropout": 0.1, "target_modules": list(encoders.PROJECTIONS)}
    retriever = trainable_retriever(record["path"], name, lora).eval()  # fresh LoRA: B = 0, the backbone itself
    batcher = Batcher(load_tokenizer(record["path"]), SUPERVISED, name, record["path"])
    encoder = Encoder(EncoderSpec(record, ENCODING, None, SUPERVISED), "cpu")
    for kind in ("query", "passage"):
        with torch.no_grad():
            trained = retriever.embed(*batcher.tensors(kind, TEXTS)).numpy()
        np.testing.assert_allclose(trained, encoder.encode(kind, TEXTS), atol=1e-5)


def test_a_tiny_sentence_transformers_model_embeds_as_its_own_library_does(built):
    from sentence_transformers import SentenceTransformer

    record = built["sentence_transformers"]
    library = SentenceTransformer(record["path"], device="cpu")
    ours = Encoder(EncoderSpec(record, {**ENCODING, "max_text_tokens": {"query": 400, "passage": 400}}), "cpu")
    for kind, prompt in (("query", "query"), ("passage", "document")):
        theirs = library.encode(TEXTS, prompt_name=prompt, normalize_embeddings=True)
        np.testing.assert_allclose(ours.encode(kind, TEXTS), theirs, atol=1e-5)


def test_raw_encoders_stay_supervised_only_while_embedding_models_are_zero_shot_rows():
    assert [n for n in FAMILIES if not encoders.family(n).zero_shot] == ["bert", "t5"]
    config = {
        "backbones": {"t5": {"architecture": "t5", "label": "T5"}},
        "settings": {"zeroshot": {"backbones": ["t5"]}},
    }
    with pytest.raises(ValueError, match="'t5' is a t5 encoder; zero-shot PromptReps needs a chat LM"):
        encoders.check(config)
    config = {
        "backbones": {"minilm": {"architecture": "sentence_transformers", "label": "MiniLM"}},
        "settings": {"zeroshot": {"backbones": ["minilm"]}},
    }
    encoders.check(config)


LUO2024 = {  # the second study's backbones (PROTOCOL.md), as real hub ids
    "bert-base": ("bert", "google-bert/bert-base-uncased"),
    "t5-base": ("t5", "google/t5-v1_1-base"),
    "phi-1.5": ("phi", "microsoft/phi-1_5"),
    "phi-2": ("phi", "microsoft/phi-2"),
    "gemma-2b": ("gemma", "google/gemma-2b"),
    "llama-2-7b": ("llama", "meta-llama/Llama-2-7b-hf"),
    "llama-3-8b-chat": ("llama", "meta-llama/Meta-Llama-3-8B-Instruct"),
    "qwen1.5-0.5b": ("qwen2", "Qwen/Qwen1.5-0.5B"),
}


def luo2024_config(passage_tokens: list[int]) -> dict:
    config = yaml.safe_load((ROOT / "config/scaling.yaml").read_text(encoding="utf-8"))
    config["backbones"] = {
        name: {"label": name, "architecture": arch, "hub_id": hub_id} for name, (arch, hub_id) in LUO2024.items()
    }
    config["settings"]["zeroshot"]["backbones"] = [n for n, (arch, _) in LUO2024.items() if arch not in ("bert", "t5")]
    config["settings"]["supervised"]["backbones"] = list(LUO2024)
    config["settings"]["supervised"]["axes"] = {
        "passage_tokens": {"values": passage_tokens, "backbones": list(LUO2024)}
    }
    return config


def test_the_second_study_backbones_plan_with_real_hub_ids(tmp_path):
    from workflow_helpers import load_study

    path = tmp_path / "luo.yaml"
    path.write_text(yaml.safe_dump(luo2024_config([256, 512])), encoding="utf-8")  # BERT's 512 positions bound it
    study = load_study(path)
    assert set(study.backbones_of("supervised")) == set(LUO2024)


@pytest.mark.parametrize("backbone, limit", [("phi-1.5", 2048), ("llama-2-7b", 4096)])
def test_the_length_axis_refuses_more_tokens_than_a_backbone_has_positions_at_dag_build(backbone, limit, tmp_path):
    from workflow_helpers import load_study

    from llm_retrieval.study import ConfigError

    path = tmp_path / "luo.yaml"
    config = luo2024_config([8192])
    config["settings"]["supervised"]["axes"]["passage_tokens"]["backbones"] = [backbone, "t5-base"]
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"\[8192\] exceed backbone '{backbone}''s position limit of {limit} tokens"):
        load_study(path)


def test_a_gated_model_without_a_hub_token_is_named_by_pins_and_by_the_download(monkeypatch):
    from huggingface_hub import HfApi

    from llm_retrieval import backbones, pins

    monkeypatch.setattr(backbones, "hub_token_present", lambda: False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    refs = [
        pins.HubRef("model", "meta-llama/Llama-2-7b-hf", "main", "backbones.llama.revision"),
        pins.HubRef("model", "google/gemma-2b", "main", "backbones.gemma.revision"),
        pins.HubRef("model", "Qwen/Qwen1.5-0.5B", "main", "backbones.qwen.revision"),
    ]
    with pytest.raises(backbones.HubTokenError, match="google/gemma-2b, meta-llama/Llama-2-7b-hf; .*HF_TOKEN"):
        pins.resolve(refs, HfApi(token=False))
    with pytest.raises(backbones.HubTokenError, match="meta-llama/Llama-2-7b-hf is gated: .*export HF_TOKEN"):
        backbones.fetch_hub_backbone("meta-llama/Llama-2-7b-hf", "main", "llama")


@pytest.mark.parametrize(
    "name, chosen, runs",
    [
        ("qwen2", "flash_attention_2", "flash_attention_2"),
        ("llama", "sdpa", "sdpa"),
        ("t5", "flash_attention_2", "sdpa"),
        ("bert", "flash_attention_2", "sdpa"),
        ("gemma2", "sdpa", "eager"),
        ("gemma2", "flash_attention_2", "flash_attention_2"),
    ],
)
def test_each_family_runs_an_attention_implementation_it_has(name, chosen, runs):
    from llm_retrieval.modeling import family_attention

    assert family_attention(encoders.family(name), chosen) == runs


def test_a_pooling_for_a_sentence_transformers_model_or_an_unmapped_lora_name_is_refused_at_dag_build():
    config = {
        "backbones": {"minilm": {"architecture": "sentence_transformers", "label": "MiniLM", "pooling": "cls"}},
        "settings": {},
    }
    with pytest.raises(ValueError, match="backbones.minilm.pooling: a sentence_transformers model pools as its own"):
        encoders.check(config)
    config = {
        "backbones": {"phi": {"architecture": "phi", "label": "Phi", "hub_id": "microsoft/phi-2"}},
        "settings": {"supervised": {"backbones": ["phi"]}},
        "training": {"lora": {"target_modules": ["q_proj", "c_attn"]}},
    }
    with pytest.raises(ValueError, match=r"\['c_attn'\] have no counterpart in backbone 'phi' \(phi; known: q_proj"):
        encoders.check(config)
