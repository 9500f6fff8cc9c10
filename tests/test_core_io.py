"""Atomic writes, stdlib demo data, BM25, config cross-checks."""
import ast
import json

import pytest

from llm_retrieval.atomic import atomic_path, write_json
from llm_retrieval.bm25 import bm25_run, build_index
from llm_retrieval.data.canonical import DataError, read_qrels, read_queries, write_corpus
from llm_retrieval.data.demo import first_sentence, split_of, stdlib_pairs
from llm_retrieval.runs import read_run
from llm_retrieval.study import ConfigError, Study


def test_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1} and list(tmp_path.iterdir()) == [target]


def test_stdlib_pairs_strip_docstring_and_query_first_sentence(tmp_path):
    module = tmp_path / "mod.py"
    module.write_text('class A:\n    @staticmethod\n    def f(x):\n        """Add one to x. More text here."""\n'
                      '        return x + 1\n\n    def g(self):\n        """Too short."""\n        pass\n')
    pairs = list(stdlib_pairs(tmp_path))
    assert [p["qualname"] for p in pairs] == ["A.f"]
    assert pairs[0]["query"] == "Add one to x."
    assert pairs[0]["code"] == "@staticmethod\ndef f(x):\n    return x + 1"
    ast.parse(pairs[0]["code"])


def test_first_sentence_and_deterministic_split():
    assert first_sentence("Return the thing.\n\nLonger explanation.") == "Return the thing."
    assert first_sentence("Open a file\n  for reading. Then more") == "Open a file for reading."
    assert split_of("os:path.join:1") == split_of("os:path.join:1")


def test_bm25_finds_the_lexical_match_and_drops_self_hit(tmp_path):
    corpus = tmp_path / "corpus.parquet"
    write_corpus(corpus, [{"id": "q1", "title": "", "text": "parse arguments"},
                          {"id": "d1", "title": "argparse", "text": "parse command line arguments"},
                          {"id": "d2", "title": "json", "text": "decode json documents"}])
    params = {"k1": 0.9, "b": 0.4, "stopwords": "en", "stemmer": "english"}
    build_index(corpus, tmp_path / "index", params)
    bm25_run(tmp_path / "index", corpus, {"q1": "parsing arguments"}, 2, True, tmp_path / "run.trec", params)
    assert list(read_run(tmp_path / "run.trec")["q1"]) == ["d1"]


def test_missing_query_set_is_a_named_error(tmp_path):
    from llm_retrieval.data.canonical import write_qrels, write_queries
    write_queries(tmp_path / "queries.parquet", [{"query_set": "test", "id": "q", "text": "x"}])
    write_qrels(tmp_path / "qrels.parquet", [{"query_set": "test", "query_id": "q", "doc_id": "d", "relevance": 1}])
    with pytest.raises(DataError, match="qrels.parquet: no qrels for query set 'dev'"):
        read_qrels(tmp_path / "qrels.parquet", "dev")
    with pytest.raises(DataError, match="file not found"):
        read_queries(tmp_path / "nope.parquet", "test")


def _config():
    import yaml
    from snakemake.utils import validate
    config = yaml.safe_load(open("config/demo.yaml"))
    validate(config, "workflow/schemas/config.schema.yaml")
    return config


def test_study_rejects_unknown_backbone_and_bad_batch_product():
    config = _config()
    config["settings"]["zeroshot"]["backbones"].append("llama")
    with pytest.raises(ConfigError, match="settings.zeroshot.backbones: unknown backbone 'llama'"):
        Study(config)
    config = _config()
    config["training"]["global_batch"] = 7
    with pytest.raises(ConfigError, match="training.global_batch"):
        Study(config)
