"""The summary in the field's words: measures as papers print them, who is above and below whom."""

from __future__ import annotations

from llm_retrieval.evaluation_kinds import DISPLAY_NAMES, MEASURES, display_name
from llm_retrieval.report import summary
from llm_retrieval.report.tables import DROP_MARK, UP_MARK, Cell, Table


def measure_table(marks: dict[str, list[str]]) -> Table:
    """Base, BM25, BERT over as many datasets as each row has marks ('' / UP_MARK / DROP_MARK)."""
    items = [f"set{i}" for i in range(len(next(iter(marks.values()))))]
    table = Table(name="t", title="T", layout="measure", measure="ndcg_cut_10", retrievers=["BM25", "Base", "BERT"],
                  items=items, anchor="Base", test="ttest", alpha=0.05)  # fmt: skip
    for retriever in table.retrievers:
        row = marks.get(retriever, [""] * len(items))
        for item, mark in zip(items, row):
            value = {"BM25": 0.5, "Base": 0.4, "BERT": 0.3}[retriever]
            table.cells[(retriever, item)] = Cell(retriever, item, value, mark=mark)
        table.averages[retriever] = Cell(retriever, "Avg", value)
    return table


def test_every_measure_a_job_computes_has_the_name_papers_print():
    assert {m for kind in MEASURES.values() for m in kind} <= set(DISPLAY_NAMES)
    assert [display_name(m) for m in ("ndcg_cut_10", "mrr_10", "recall_100")] == ["nDCG@10", "MRR@10", "R@100"]


def test_the_significance_sentence_says_who_is_above_and_below_the_anchor_in_plain_words():
    up, down = [UP_MARK] * 3 + [""] * 3, [DROP_MARK] * 3 + [""] * 3
    table = measure_table({"BM25": up, "BERT": down})
    assert summary.significance_sentence(table) == (
        "BM25 is significantly above Base in 3 of 6 datasets; BERT significantly below Base in 3"
    )
    sentence = summary.table_sentence(table)
    assert sentence.startswith("On *T*, BM25 has the highest average nDCG@10 (0.500, +0.100 over Base)")
    assert "ndcg_cut_10" not in sentence and "BM25 is significantly above Base in 3 of 6 datasets" in sentence


def test_no_significant_cell_is_said_so():
    assert summary.significance_sentence(measure_table({"BM25": [""] * 2})) == (
        "no retriever is significantly above or below Base in any dataset"
    )


def test_a_column_table_names_its_columns_by_measure_and_query_set():
    table = Table(name="s", title="S", layout="column", measure=None, retrievers=["BM25", "Base"], items=["test_mrr10"],
                  anchor="Base", test="ttest", alpha=0.05, columns={"test_mrr10": ["test", "mrr_10"]})  # fmt: skip
    table.cells = {(r, "test_mrr10"): Cell(r, "test_mrr10", v) for r, v in (("BM25", 0.2), ("Base", 0.3))}
    sentence = summary.table_sentence(table)
    assert sentence.startswith("In *S*, Base leads on MRR@10 (test) (0.300, +0.100 over BM25)")
    assert "test_mrr10" not in sentence
    assert Table.from_json(table.to_json()).item_name("test_mrr10") == "MRR@10 (test)"
