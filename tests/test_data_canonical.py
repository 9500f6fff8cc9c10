"""The canonical collection files (llm_retrieval.data.canonical): reading them, and their named errors."""

import pytest

from llm_retrieval.data.canonical import DataError, read_qrels, read_queries, write_qrels, write_queries


def test_missing_query_set_is_a_named_error(tmp_path):
    write_queries(tmp_path / "queries.parquet", [{"query_set": "test", "id": "q", "text": "x"}])
    write_qrels(tmp_path / "qrels.parquet", [{"query_set": "test", "query_id": "q", "doc_id": "d", "relevance": 1}])
    with pytest.raises(DataError, match="qrels.parquet: no qrels for query set 'dev'"):
        read_qrels(tmp_path / "qrels.parquet", "dev")
    with pytest.raises(DataError, match="file not found"):
        read_queries(tmp_path / "nope.parquet", "test")
