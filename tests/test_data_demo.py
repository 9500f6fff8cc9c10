"""The offline demo's text-to-code source (llm_retrieval.data.demo): pairs from the Python stdlib."""

import ast

from llm_retrieval.data.demo import first_sentence, split_of, stdlib_pairs


def test_stdlib_pairs_strip_docstring_and_query_first_sentence(tmp_path):
    module = tmp_path / "mod.py"
    module.write_text(
        'class A:\n    @staticmethod\n    def f(x):\n        """Add one to x. More text here."""\n'
        '        return x + 1\n\n    def g(self):\n        """Too short."""\n        pass\n'
    )
    pairs = list(stdlib_pairs(tmp_path))
    assert [p["qualname"] for p in pairs] == ["A.f"]
    assert pairs[0]["query"] == "Add one to x."
    assert pairs[0]["code"] == "@staticmethod\ndef f(x):\n    return x + 1"
    ast.parse(pairs[0]["code"])


def test_first_sentence_and_deterministic_split():
    assert first_sentence("Return the thing.\n\nLonger explanation.") == "Return the thing."
    assert first_sentence("Open a file\n  for reading. Then more") == "Open a file for reading."
    assert split_of("os:path.join:1") == split_of("os:path.join:1")
