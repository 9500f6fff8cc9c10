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


def test_the_front_page_shows_the_main_table_inline_as_rst_that_docutils_renders():
    from docutils.core import publish_parts

    main = Table(name="supervised", title="S_1 *demo*", layout="column", measure=None, retrievers=["BM25", "Base"],
                 items=["test_mrr10"], anchor="Base", test="ttest", alpha=0.05,
                 columns={"test_mrr10": ["test", "mrr_10"]})  # fmt: skip
    main.cells = {
        ("BM25", "test_mrr10"): Cell("BM25", "test_mrr10", 0.2468, paper=0.25, ci=(0.2, 0.3)),
        ("Base", "test_mrr10"): Cell("Base", "test_mrr10", 0.1357, mark=DROP_MARK),
    }
    other = measure_table({"BM25": [""]})
    page = summary.front_page(
        "Title\n=====\n\n.. summary goes here\n", "The summary, nDCG@10.", [other, main], ["supervised"]
    )
    html = publish_parts(page, writer_name="html", settings_overrides={"report_level": 2})["html_body"]
    assert "The summary, nDCG&#64;10." in html and "system-message" not in html  # valid RST: no docutils complaint
    assert "<table" in html and "S_1 *demo*" in html  # the title's markup characters printed as they are
    assert "MRR&#64;10 (test)" in html and "mailto" not in html and "0.2468" in html and f"0.1357{DROP_MARK}" in html
    assert "0.2468 [0.2000, 0.3000] / 0.2500" in html
    assert "set0" not in html  # only the main table is inline


def test_the_main_tables_are_the_configured_ones_else_the_first():
    tables = {"beir": {}, "supervised": {}}
    assert summary.main_tables({"report": {}, "tables": tables}) == ["beir"]
    assert summary.main_tables({"report": {"main_tables": ["supervised"]}, "tables": tables}) == ["supervised"]


def test_an_unknown_main_table_is_a_config_error_naming_it():
    import pytest
    import yaml
    from workflow_helpers import ROOT

    from llm_retrieval.config_schema import validate_config
    from llm_retrieval.study import ConfigError, Study

    config = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    config["report"] = {"main_tables": ["supervisd"]}
    validate_config(config, ROOT / "workflow/schemas/config.schema.yaml")
    with pytest.raises(ConfigError, match="report.main_tables: unknown table 'supervisd'"):
        Study(config)
