"""BM25 (llm_retrieval.bm25): index, search, self-hit dropping."""

from llm_retrieval.bm25 import bm25_run, build_index
from llm_retrieval.data.canonical import write_corpus
from llm_retrieval.runs import read_run


def test_bm25_finds_the_lexical_match_and_drops_self_hit(tmp_path):
    corpus = tmp_path / "corpus.parquet"
    write_corpus(
        corpus,
        [
            {"id": "q1", "title": "", "text": "parse arguments"},
            {"id": "d1", "title": "argparse", "text": "parse command line arguments"},
            {"id": "d2", "title": "json", "text": "decode json documents"},
        ],
    )
    params = {"k1": 0.9, "b": 0.4, "stopwords": "en", "stemmer": "english"}
    build_index(corpus, tmp_path / "index", params)
    bm25_run(tmp_path / "index", corpus, {"q1": "parsing arguments"}, 2, True, tmp_path / "run.trec", params)
    assert list(read_run(tmp_path / "run.trec")["q1"]) == ["d1"]
