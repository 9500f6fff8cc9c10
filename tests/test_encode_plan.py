"""The encoding plan: corpora cut into shards by estimated token volume, batches bounded by padded tokens."""

import logging
import random
import statistics

import pytest
from workflow_helpers import ROOT, load_study

from llm_retrieval.corpus_sizes import SizeEstimateError, SizeTable, check_actual_size
from llm_retrieval.encoder import BatchBudgetError, Encoder, EncoderSpec, padding_ratio, token_batches
from llm_retrieval.study import ConfigError, Study


def test_token_batches_bound_padded_tokens_and_run_longest_first():
    rng = random.Random(0)
    lengths = [rng.randint(5, 300) for _ in range(2000)]
    batches = token_batches(lengths, 4096)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    assert all(len(b) * max(lengths[i] for i in b) <= 4096 for b in batches)
    assert lengths[batches[0][0]] == max(lengths)
    # short texts run in wide batches, long ones in narrow: the row count follows the length
    assert max(map(len, batches)) > 4 * len(batches[0])
    with pytest.raises(BatchBudgetError, match="encoding.batch_tokens"):
        token_batches([10, 5000], 4096)


@pytest.fixture(scope="module")
def demo_lengths():
    """Qwen2 token lengths of every demo corpus and query set, formatted and truncated as the demo config says."""
    import tempfile
    from pathlib import Path

    from llm_retrieval.corpus_sizes import qwen_encoding
    from llm_retrieval.data.beir import iter_beir_corpus
    from llm_retrieval.data.demo import build_synthetic_beir, stdlib_pairs

    config = load_study(ROOT / "config/demo.yaml").config["encoding"]
    template = SizeTable().template_tokens
    enc = qwen_encoding()
    pairs = list(stdlib_pairs())
    with tempfile.TemporaryDirectory() as tmp:
        build_synthetic_beir(tmp)
        synth = [doc["text"] for doc in iter_beir_corpus(Path(tmp) / "corpus.jsonl")]
    texts = {
        "stdlib code (t2c corpus, c2t queries)": ([p["code"] for p in pairs], "passage"),
        "stdlib sentences (c2t corpus, t2c queries)": ([p["query"] for p in pairs], "query"),
        "synth-text corpus": (synth, "passage"),
    }
    return config, {
        name: [template + min(len(ids), config["max_text_tokens"][kind]) for ids in enc.encode_ordinary_batch(items)]
        for name, (items, kind) in texts.items()
    }


def test_padding_stays_within_five_percent_on_every_demo_corpus(demo_lengths):
    config, corpora = demo_lengths
    for name, lengths in corpora.items():
        ratio = padding_ratio(lengths, token_batches(lengths, config["batch_tokens"]))
        assert 1.0 <= ratio <= 1.05, (name, ratio)
        assert statistics.pstdev(lengths) > 0  # a real spread of lengths, not a trivial corpus


def test_a_budget_below_one_longest_sequence_is_a_named_config_error(tiny_backbones):
    encoding = {
        "prompts": {"query": 'Q: "{text}"', "passage": 'P: "{text}"', "assistant_prefill": 'W: "'},
        "normalize": True,
        "dtype": "float32",
        "batch_tokens": 40,
        "max_text_tokens": {"query": 16, "passage": 32},
    }
    with pytest.raises(BatchBudgetError, match=r"encoding.batch_tokens: 40 .* longest passage sequence"):
        Encoder(EncoderSpec(tiny_backbones["qwen2"], encoding), "cpu")
    assert issubclass(BatchBudgetError, ConfigError)
    config = load_study(ROOT / "config/demo.yaml").config
    config["encoding"]["batch_tokens"] = 100  # below max_text_tokens.passage (192): caught at DAG build
    with pytest.raises(ConfigError, match="encoding.batch_tokens: 100"):
        Study(config)


def test_shard_count_follows_the_estimated_token_volume():
    study = load_study(ROOT / "config/config.yaml")
    shards = {c: study.corpus_shards(c) for c in study.used_collections()}
    assert shards["nfcorpus"] == 1 and shards["msmarco"] > 1  # 3.6K documents vs 8.8M passages
    docs, tokens = study.corpus_size("msmarco")
    assert docs == 8_841_823 and tokens > 100 * docs  # ~56 words each plus the prompt template
    study.config["encoding"]["shard_tokens"] //= 4
    assert study.corpus_shards("msmarco") >= 4 * shards["msmarco"] - 3
    study.collections["fiqa"]["source"] = {"type": "beir", "name": "not-a-beir-set"}
    with pytest.raises(ConfigError, match=r"collections.fiqa: no size estimate for source 'beir:not-a-beir-set'"):
        study.corpus_shards("fiqa")


def test_every_paper_corpus_has_a_published_size():
    table = SizeTable()
    study = load_study(ROOT / "config/config.yaml")
    for collection in study.used_collections():
        documents, mean_tokens = table.mean_tokens(collection, study.collection(collection))
        assert documents > 0 and mean_tokens > 0, collection


def test_a_corpus_much_larger_than_its_estimate_is_reported(caplog):
    logger = logging.getLogger("size-check")
    with caplog.at_level(logging.WARNING, logger="size-check"):
        assert not check_actual_size("fiqa", 57_700, 57_638, logger)
        assert check_actual_size("fiqa", 200_000, 57_638, logger)
    assert len(caplog.records) == 1 and "fiqa has 200000 documents, 3.5x its estimate" in caplog.text


def _beir_folder(folder, docs):
    import json

    folder.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps({"_id": f"d{i}", "title": title, "text": text}) + "\n" for i, (title, text) in enumerate(docs))
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as out:
        out.writelines(lines)
    return folder


def test_a_local_beir_folder_plans_without_a_size_estimate_from_its_own_files(tmp_path):
    rng = random.Random(3)
    docs = [("Title words", " ".join("w" * rng.randint(2, 9) for _ in range(rng.randint(5, 40)))) for _ in range(500)]
    folder = _beir_folder(tmp_path / "local", docs)
    table = SizeTable()
    documents, mean_tokens = table.mean_tokens("mine", {"source": {"type": "beir_local", "path": str(folder)}})
    mean_words = statistics.mean(len(f"{t} {x}".split()) for t, x in docs)
    assert documents == 500
    assert mean_tokens == pytest.approx(mean_words * table.ratios["text"])
    spec = {"source": {"type": "beir_local", "path": str(folder)}, "size_estimate": {"documents": 7, "mean_tokens": 3}}
    assert table.mean_tokens("mine", spec) == (7, 3.0)  # the override still wins


def test_a_large_local_corpus_is_sized_from_slices_not_parsed_whole(tmp_path, monkeypatch):
    from llm_retrieval import corpus_sizes

    rng = random.Random(5)
    docs = [("", " ".join("word" for _ in range(rng.randint(10, 60)))) for _ in range(20_000)]
    folder = _beir_folder(tmp_path / "big", docs)
    monkeypatch.setattr(corpus_sizes, "EXACT_COUNT_BYTES", 1 << 16)
    monkeypatch.setattr(corpus_sizes, "SLICE_BYTES", 1 << 14)  # 8 slices of 16 KiB of a ~6 MiB file
    monkeypatch.setattr(corpus_sizes, "_count_lines", lambda path: pytest.fail("counted every line"))
    documents, mean_words = corpus_sizes.local_corpus_size("big", folder / "corpus.jsonl")
    assert documents == pytest.approx(20_000, rel=0.1)
    assert mean_words == pytest.approx(statistics.mean(len(x.split()) for _, x in docs), rel=0.1)


def test_a_local_folder_missing_at_plan_time_asks_for_a_size_estimate(tmp_path):
    spec = {"source": {"type": "beir_local", "path": str(tmp_path / "not-yet")}}
    with pytest.raises(
        SizeEstimateError,
        match=r"collections.later: .*not-yet/corpus.jsonl does "
        r"not exist when the plan is built.*size_estimate",
    ):
        SizeTable().mean_tokens("later", spec)


def test_a_study_with_a_local_beir_folder_and_no_size_estimate_plans_its_shards(tmp_path):
    docs = [("", " ".join(["word"] * 50)) for _ in range(2000)]
    folder = _beir_folder(tmp_path / "mine", docs)
    study = load_study(ROOT / "config/demo.yaml")
    spec = study.collections["synth-text"]
    del spec["size_estimate"]
    spec["source"] = {"type": "beir_local", "path": str(folder)}
    documents, tokens = study.corpus_size("synth-text")
    assert documents == 2000 and tokens > 2000 * 50
    assert study.corpus_shards("synth-text") >= 1
