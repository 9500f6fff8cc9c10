"""ToolBench tool retrieval and QReCC conversational search, read from stand-ins of their released files
(field names and quoting as upstream writes them), scored with the study's measures (nDCG@5, nDCG@3)."""

import csv
import json

import pyarrow.parquet as pq
import pytest

from llm_retrieval.corpus_sizes import SizeTable
from llm_retrieval.data.canonical import DataError, read_qrels, read_queries
from llm_retrieval.data.qrecc import prepare_qrecc
from llm_retrieval.data.toolbench import prepare_toolbench
from llm_retrieval.metrics import evaluate

API = {
    "category_name": "Weather",
    "tool_name": "Forecast",
    "api_name": "daily",
    "api_description": 'Daily "forecast"',
    "required_parameters": [{"name": "city", "type": "STRING"}],
    "optional_parameters": [],
    "method": "GET",
}


def _api(name):
    return json.dumps({**API, "api_name": name})


def _toolbench(folder, corpus_rows=None):
    """The files preprocess_retriever_data.py writes (pandas to_csv, tab, QUOTE_MINIMAL)."""
    folder.mkdir(parents=True, exist_ok=True)
    corpus_rows = corpus_rows or [(1, _api("daily")), (2, _api("hourly")), (1, _api("daily")), (3, _api("alerts"))]
    with open(folder / "corpus.tsv", "w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out, delimiter="\t", lineterminator="\n")
        writer.writerow(["docid", "document_content"])
        writer.writerows(corpus_rows)
    for split, rows, qrels in (
        (
            "test",
            [(1, "Will it rain in Paris?"), (1, "Will it rain in Paris?"), (2, "Storm alerts")],
            [(1, 0, 1, 1), (1, 0, 2, 1), (2, 0, 3, 1)],
        ),
        ("train", [(7, "Hourly weather in Rome")], [(7, 0, 2, 1)]),
    ):
        with open(folder / f"{split}.query.txt", "w", newline="", encoding="utf-8") as out:
            csv.writer(out, delimiter="\t", lineterminator="\n").writerows(rows)
        with open(folder / f"qrels.{split}.tsv", "w", newline="", encoding="utf-8") as out:
            csv.writer(out, delimiter="\t", lineterminator="\n").writerows(qrels)
    return folder


def test_toolbench_files_become_a_collection_with_repeated_rows_kept_once(tmp_path):
    folder = _toolbench(tmp_path / "G1")
    manifest = prepare_toolbench(
        {"type": "toolbench", "path": str(folder)}, ["test", "train"], tmp_path / "out", tmp_path
    )
    corpus = pq.read_table(tmp_path / "out" / "corpus.parquet").to_pydict()
    assert corpus["id"] == ["1", "2", "3"] and json.loads(corpus["text"][0])["api_description"] == 'Daily "forecast"'
    assert read_queries(tmp_path / "out" / "queries.parquet", "test") == {
        "1": "Will it rain in Paris?",
        "2": "Storm alerts",
    }
    assert read_qrels(tmp_path / "out" / "qrels.parquet", "train") == {"7": {"2": 1}}
    assert manifest["counts"]["queries"] == {"test": 2, "train": 1}
    run = {"1": {"2": 3.0, "3": 2.0, "1": 1.0}, "2": {"3": 1.0}}
    scores = evaluate(run, read_qrels(tmp_path / "out" / "qrels.parquet", "test"))["aggregate"]
    assert scores["ndcg_cut_5"] == pytest.approx(((1 + 1 / 2) / (1 + 1 / 1.5849625007) + 1) / 2)


def test_a_toolbench_document_id_with_two_contents_is_a_named_error(tmp_path):
    folder = _toolbench(tmp_path / "G1", [(1, _api("daily")), (1, _api("other"))])
    with pytest.raises(DataError, match=r"corpus.tsv: line 3: document id '1' has two different contents"):
        prepare_toolbench({"type": "toolbench", "path": str(folder)}, ["test"], tmp_path / "out", tmp_path)
    assert not (tmp_path / "out").exists()


TURNS = [
    {
        "Context": [],
        "Question": "What are the pros of electric cars?",
        "Rewrite": "",
        "Answer": "Cheap to run.",
        "Answer_URL": "u",
        "Conversation_no": 74,
        "Turn_no": 1,
        "Conversation_source": "trec",
        "Truth_passages": ["p1"],
    },
    {
        "Context": ["What are the pros of electric cars?", "Cheap to run."],
        "Question": "Tell me more about Tesla",
        "Rewrite": "Tell me more about Tesla the car company.",
        "Answer": "Tesla Inc. is ...",
        "Answer_URL": "u",
        "Conversation_no": 74,
        "Turn_no": 2,
        "Conversation_source": "trec",
        "Truth_passages": ["p2", "p3"],
    },
    {
        "Context": ["x"],
        "Question": "Unanswerable?",
        "Rewrite": "",
        "Answer": "",
        "Answer_URL": "",
        "Conversation_no": 75,
        "Turn_no": 2,
        "Conversation_source": "quac",
        "Truth_passages": [],
    },
]
PASSAGES = [
    {"id": "p1", "contents": "Electric cars are cheap to run."},
    {"id": "p2", "contents": "Tesla, Inc. ..."},
    {"id": "p3", "contents": "Tesla makes cars."},
    {"id": "p4", "contents": "Unrelated passage."},
]


def _qrecc(tmp_path, turns=TURNS):
    (tmp_path / "qrecc_test.json").write_text(json.dumps(turns), encoding="utf-8")
    (tmp_path / "passages").mkdir(exist_ok=True)
    (tmp_path / "passages" / "part-0.jsonl").write_text("".join(json.dumps(p) + "\n" for p in PASSAGES))
    return {
        "type": "qrecc",
        "turns": {"test": str(tmp_path / "qrecc_test.json")},
        "passages": str(tmp_path / "passages"),
    }


def test_a_qrecc_query_is_the_context_then_the_question_and_unjudged_turns_are_counted(tmp_path):
    manifest = prepare_qrecc(_qrecc(tmp_path), ["test"], tmp_path / "out", tmp_path)
    queries = read_queries(tmp_path / "out" / "queries.parquet", "test")
    assert queries == {
        "74_1": "What are the pros of electric cars?",
        "74_2": "What are the pros of electric cars? Cheap to run. Tell me more about Tesla",
    }
    assert manifest["validation"]["notes"] == ["1 test turns without a relevant passage left out"]
    run = {"74_1": {"p4": 2.0, "p1": 1.0}, "74_2": {"p3": 1.0}}
    scores = evaluate(run, read_qrels(tmp_path / "out" / "qrels.parquet", "test"))["aggregate"]
    assert scores["ndcg_cut_3"] == pytest.approx((1 / 1.5849625007 + 1 / (1 + 1 / 1.5849625007)) / 2)


def test_qrecc_qrels_may_come_from_a_trec_file_instead_of_truth_passages(tmp_path):
    source = _qrecc(tmp_path, [{k: v for k, v in t.items() if k != "Truth_passages"} for t in TURNS])
    (tmp_path / "qrels.txt").write_text("75_2 0 p4 1\n")
    source["qrels"] = {"test": str(tmp_path / "qrels.txt")}
    prepare_qrecc(source, ["test"], tmp_path / "out", tmp_path)
    assert read_queries(tmp_path / "out" / "queries.parquet", "test") == {"75_2": "x Unanswerable?"}


def test_a_qrecc_turn_without_its_fields_is_a_named_error(tmp_path):
    source = _qrecc(tmp_path, [{"Question": "q", "Conversation_no": 1, "Turn_no": 1}])
    with pytest.raises(DataError, match=r"qrecc_test.json: turn 1: missing field\(s\) \['Context'\]"):
        prepare_qrecc(source, ["test"], tmp_path / "out", tmp_path)


def test_toolbench_and_qrecc_local_files_size_themselves_at_plan_time(tmp_path):
    table = SizeTable()
    folder = _toolbench(tmp_path / "G1")
    # lines counted: the header and the repeated rows too, an upper bound (the plan needs an estimate)
    assert table.mean_tokens("tools", {"source": {"type": "toolbench", "path": str(folder)}})[0] == 5
    documents, mean_tokens = table.mean_tokens("conv", {"source": _qrecc(tmp_path)})
    assert documents == 4 and mean_tokens == pytest.approx(14 / 4 * table.ratios["text"])  # words of "contents"


def test_the_local_files_of_toolbench_and_qrecc_are_their_preparing_rules_inputs(tmp_path):
    from llm_retrieval.data.sources import local_inputs

    assert local_inputs({"type": "toolbench", "path": "G1"}) == {"folder": "G1"}
    source = {**_qrecc(tmp_path), "qrels": {"test": "q.txt"}}
    assert local_inputs(source) == {
        "passages": source["passages"],
        "turns_test": source["turns"]["test"],
        "qrels_test": "q.txt",
    }
    assert local_inputs({"type": "beir", "name": "nq"}) == {}


def test_missing_hand_fetched_files_are_left_out_of_the_inputs_and_named_with_what_they_hold_and_where_to_get_them(
    tmp_path,
):
    from llm_retrieval.data import qrecc, toolbench
    from llm_retrieval.data.sources import (
        MissingLocalDataError,
        missing_local_data,
        planned_local_inputs,
        prepare_collection,
    )

    source = {**_qrecc(tmp_path), "qrels": {"test": str(tmp_path / "absent-qrels.txt")}}
    # present inputs stay inputs; the missing qrels file is left out and named, with its config key
    assert planned_local_inputs(source) == {"passages": source["passages"], "turns_test": source["turns"]["test"]}
    problem = missing_local_data(source)
    assert f"{tmp_path / 'absent-qrels.txt'} (source.qrels.test)" in problem and source["passages"] not in problem
    assert qrecc.LOCAL_FILES in problem and qrecc.GET_FROM in problem
    assert missing_local_data(_qrecc(tmp_path)) is None

    folder = tmp_path / "G1"
    tools = {"type": "toolbench", "path": str(folder)}
    assert planned_local_inputs(tools) == {}
    with pytest.raises(MissingLocalDataError) as err:
        prepare_collection(tools, ["test"], tmp_path / "results/data/tools", tmp_path / "work")
    message = str(err.value)
    assert message.startswith(f"collections.tools: toolbench data not found: {folder} (source.path)")
    assert toolbench.LOCAL_FILES in message and toolbench.GET_FROM in message
    assert not (tmp_path / "results/data/tools").exists()
    _toolbench(folder)
    assert planned_local_inputs(tools) == {"folder": str(folder)} and missing_local_data(tools) is None
    # a folder that may be a workflow output (the demo's beir_local) stays an input: Snakemake makes it
    assert planned_local_inputs({"type": "beir_local", "path": str(tmp_path / "none")}) == {
        "folder": str(tmp_path / "none")
    }
