"""Atomic writes (llm_retrieval.atomic): an interrupted write leaves nothing behind."""

import json

import pytest

from llm_retrieval.atomic import atomic_path, write_json


def test_failed_write_leaves_neither_file_nor_temp(tmp_path):
    target = tmp_path / "out.json"
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        tmp.write_text("half")
        raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []
    write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1} and list(tmp_path.iterdir()) == [target]
