"""The second study's offline data (config/luo2024-demo.yaml), built from the stdlib code-search pairs: an STS set
in MTEB's fields graded by where two docstring sentences come from, NLI-style triplets in all-nli's roles, and a
long-document task whose documents are whole modules."""

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from workflow_helpers import ROOT

from llm_retrieval.atomic import write_parquet
from llm_retrieval.data import sources, training_sources
from llm_retrieval.data.canonical import TRAIN_GROUPS_SCHEMA, DataError, read_table
from llm_retrieval.data.demo import PAIRS_SCHEMA, PAIRS_SOURCE_TYPES, prepare_stdlib_codesearch
from llm_retrieval.data.stdlib_similarity import GRADES, other_sentence, prepare_stdlib_nli_groups, prepare_stdlib_sts
from llm_retrieval.data.sts import PAIRS_FILE, read_pairs
from llm_retrieval.evaluation_kinds import STS, kind_of
from llm_retrieval.train.dataset import read_groups

# (module, name, line, docstring, split): two packages, three modules, both splits in each module.
FUNCTIONS = [
    ("alpha.files", "open_file", 1, "Open the named file for reading. It returns a handle to the file.", "test"),
    ("alpha.files", "close_file", 9, "Close the handle that was opened. Nothing happens on a closed one.", "test"),
    ("alpha.files", "read_file", 17, "Read every byte of the named file. The bytes come back as one string.", "train"),
    (
        "alpha.files",
        "seek_file",
        25,
        "Move the position of the file handle. Returns the new absolute position.",
        "train",
    ),
    ("alpha.paths", "join_paths", 1, "Join two path parts with the separator. Empty parts are left out.", "test"),
    ("alpha.paths", "split_path", 9, "Split a path into its head and tail. The tail has no separator.", "train"),
    ("beta.numbers", "add_numbers", 1, "Add the two numbers and return the sum. Works for any numeric type.", "test"),
    ("beta.numbers", "mul_numbers", 9, "Multiply the two numbers given here. The product keeps the type.", "test"),
    ("beta.numbers", "neg_number", 17, "Negate the number that is given here. Zero stays exactly zero.", "train"),
    (
        "beta.numbers",
        "abs_number",
        25,
        "Return the absolute value of a number. Negative input turns positive.",
        "train",
    ),
]


def _pairs_file(tmp_path):
    rows = [
        {
            "id": f"{module}:{name}:{line}",
            "module": module,
            "qualname": name,
            "docstring": doc,
            "query": doc.split(". ")[0] + ".",
            "code": f"def {name}(x):\n    return x",
            "split": split,
        }
        for module, name, line, doc, split in FUNCTIONS
    ]
    path = tmp_path / "pairs.parquet"
    write_parquet(path, pa.Table.from_pylist(rows, schema=PAIRS_SCHEMA))
    return path, {r["id"]: r for r in rows}


def _relation(first: dict, sentence2: str, rows: dict) -> str:
    """Where sentence2 comes from, seen from the function of sentence1 (the test's own reading of the grades)."""
    if sentence2 == other_sentence(first["docstring"], first["query"]):
        return "same_function"
    (source,) = [r for r in rows.values() if r["query"] == sentence2]
    assert source["split"] == first["split"], "a pair's sentences come from one split"
    if source["module"] == first["module"]:
        return "same_module"
    same_package = source["module"].split(".")[0] == first["module"].split(".")[0]
    return "same_package" if same_package else "other_package"


def test_the_stdlib_sts_set_has_mtebs_fields_and_grades_each_pair_by_where_its_sentences_come_from(tmp_path):
    pairs_path, rows = _pairs_file(tmp_path)
    source = {"type": "stdlib_sts", "pairs": str(pairs_path), "limit": 50}
    manifest = prepare_stdlib_sts(source, ["test"], tmp_path / "sts", tmp_path)
    pairs = read_pairs(tmp_path / "sts" / PAIRS_FILE, "test").to_pylist()
    assert manifest["counts"]["pairs"] == {"test": 5} and {p["id"] for p in pairs} == {
        i for i, r in rows.items() if r["split"] == "test"
    }
    for pair in pairs:
        first = rows[pair["id"]]
        assert pair["sentence1"] == first["query"]
        assert pair["score"] == GRADES[_relation(first, pair["sentence2"], rows)]
    assert len({p["score"] for p in pairs}) >= 2  # a correlation needs graded scores
    prepare_stdlib_sts(source, ["test"], tmp_path / "again", tmp_path)
    assert read_pairs(tmp_path / "again" / PAIRS_FILE, "test").to_pylist() == pairs  # the same on every build


def test_nli_triplets_from_the_train_split_pair_a_functions_sentences_against_a_neighbour_from_its_module(tmp_path):
    pairs_path, rows = _pairs_file(tmp_path)
    report = prepare_stdlib_nli_groups({"type": "stdlib_nli"}, pairs_path, tmp_path / "nli.parquet")
    assert pq.read_schema(tmp_path / "nli.parquet").equals(TRAIN_GROUPS_SCHEMA)
    groups = read_groups(tmp_path / "nli.parquet")
    train = {i: r for i, r in rows.items() if r["split"] == "train"}
    assert report["groups"] == len(groups) == len(train)
    for group in groups:
        function = train[group.query_id]
        assert group.query == function["query"]
        assert group.positives[0].text == other_sentence(function["docstring"], function["query"])
        (neighbour,) = [r for r in train.values() if r["query"] == group.negatives[0].text]
        module_has_another = any(r["module"] == function["module"] and r is not function for r in train.values())
        assert neighbour is not function
        if module_has_another:
            assert neighbour["module"] == function["module"]
        else:  # the module's only train function: a neighbour from its package
            assert neighbour["module"].split(".")[0] == function["module"].split(".")[0]
    limited = prepare_stdlib_nli_groups({"type": "stdlib_nli", "limit": 2}, pairs_path, tmp_path / "two.parquet")
    assert limited["groups"] == 2 and {g.query_id for g in read_groups(tmp_path / "two.parquet")} < set(train)
    with pytest.raises(DataError, match="no stdlib function in split 'train'"):
        only_test = tmp_path / "test-only.parquet"
        table = read_table(pairs_path, PAIRS_SCHEMA)
        write_parquet(only_test, table.filter(pa.compute.equal(table["split"], "test")))
        prepare_stdlib_nli_groups({"type": "stdlib_nli"}, only_test, tmp_path / "none.parquet")
    assert not (tmp_path / "none.parquet").exists()


def test_the_module_task_has_one_long_document_per_module_and_each_query_finds_its_functions_module(tmp_path):
    pairs_path, rows = _pairs_file(tmp_path)
    source = {"type": "stdlib_codesearch", "direction": "text-to-module", "pairs": str(pairs_path), "limit": 2}
    prepare_stdlib_codesearch(source, ["test"], tmp_path / "mod", tmp_path)
    corpus = {d["id"]: d["text"] for d in pq.read_table(tmp_path / "mod" / "corpus.parquet").to_pylist()}
    qrels = pq.read_table(tmp_path / "mod" / "qrels.parquet").to_pylist()
    queries = {q["id"]: q["text"] for q in pq.read_table(tmp_path / "mod" / "queries.parquet").to_pylist()}
    assert len(corpus) == 2  # limit counts modules
    for module_doc, text in corpus.items():
        functions = sorted((r for r in rows.values() if f"m-{r['module']}" == module_doc), key=lambda r: r["id"])
        assert text == "\n\n".join(r["code"] for r in sorted(functions, key=lambda r: int(r["id"].rsplit(":")[-1])))
    for qrel in qrels:
        function = rows[qrel["query_id"][len("q-") :]]
        assert qrel["doc_id"] == f"m-{function['module']}" and function["split"] == "test"
        assert queries[qrel["query_id"]] == function["query"] and function["query"] not in corpus[qrel["doc_id"]]


def test_the_stdlib_sources_are_registered_read_the_pairs_file_and_sts_is_scored_as_sts():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())["$defs"]
    assert "stdlib_sts" in sources.PREPARERS and "stdlib_sts" in schema["source"]["properties"]["type"]["enum"]
    assert "stdlib_nli" in training_sources.PREPARERS
    assert "stdlib_nli" in schema["training_source"]["properties"]["type"]["enum"]
    assert set(PAIRS_SOURCE_TYPES) == {"stdlib_codesearch", "stdlib_sts", "stdlib_nli"}
    assert kind_of({"source": {"type": "stdlib_sts"}}) == STS
