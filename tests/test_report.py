"""The comparison tables: paper layout, per-language averaging, published numbers, significance marks."""
import csv
import io

import yaml
from snakemake.utils import validate

from llm_retrieval.atomic import write_json
from llm_retrieval.report import build_table, significant_drop
from llm_retrieval.study import Study, metrics_path
from workflow_helpers import ROOT


def paper_study() -> Study:
    config = yaml.safe_load(open(ROOT / "config/config.yaml"))
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return Study(config)


def fake_metrics(root, study, value_of):
    """Write a metrics file per unit whose per-query values come from ``value_of(unit, query)``."""
    for unit in study.eval_units():
        per_query = {f"q{i}": {m: value_of(unit, i) for m in ("ndcg_cut_10", "mrr_10", "recall_100", "recall_200",
                                                              "recall_1000")} for i in range(30)}
        aggregate = {m: sum(v[m] for v in per_query.values()) / 30 for m in per_query["q0"]}
        write_json(metrics_path(unit, str(root)), {"aggregate": aggregate, "per_query": per_query})


def rows_of(csv_rows):
    return {row[csv_rows[0].index("dataset") if "dataset" in csv_rows[0] else 0]: dict(zip(csv_rows[0], row))
            for row in csv_rows[1:]}


def test_coir_table_averages_languages_and_shows_published_numbers(tmp_path):
    study = paper_study()
    languages = ["go", "java", "javascript", "ruby", "python", "php"]

    def value(unit, query):
        if unit.collection.startswith("codesearchnet-ccr-"):
            return 0.1 * languages.index(unit.collection.rsplit("-", 1)[1])  # 0.0 .. 0.5, mean 0.25
        return 0.5

    fake_metrics(tmp_path, study, value)
    markdown, csv_rows = build_table(study, "coir", lambda u: metrics_path(u, str(tmp_path)))
    rows = rows_of(csv_rows)
    assert len(rows) == 11  # ten datasets + Avg
    assert rows["CodeSearchNet-CCR"]["Base"] == "0.2500"
    assert rows["CodeSearchNet-CCR"]["task"] == "C2C"
    assert rows["APPS"]["VL-I (paper)"] == "0.1948"
    assert rows["Avg"]["Coder (paper)"] == "0.2994"
    assert "| C2C | CodeSearchNet-CCR | 0.2500 / 0.3469 |" in markdown


def test_supervised_table_marks_significant_drops_against_base(tmp_path):
    study = paper_study()

    def value(unit, query):
        if unit.retriever == "math" and unit.query_set == "dev":
            return 0.3 + 0.01 * (query % 3)  # clearly below Base on every dev query
        return 0.5 + 0.01 * (query % 3)

    fake_metrics(tmp_path, study, value)
    markdown, csv_rows = build_table(study, "supervised", lambda u: metrics_path(u, str(tmp_path)))
    rows = {row[0]: dict(zip(csv_rows[0], row)) for row in csv_rows[1:]}
    assert list(rows)[:2] == ["BM25", "Base"]
    assert rows["Math"]["significant_drop"] == "dev_mrr10;dev_ndcg10;dev_r100;dev_r200;dev_r1000"
    assert rows["Coder"]["significant_drop"] == "" and rows["Base"]["significant_drop"] == ""
    assert rows["Math"]["dev_mrr10 (paper)"] == "0.4150"
    assert "0.3100 / 0.4150▼" in markdown


def test_no_drop_when_equal_or_higher():
    base = {"per_query": {f"q{i}": {"m": 0.5} for i in range(10)}}
    same = {"per_query": {f"q{i}": {"m": 0.5} for i in range(10)}}
    assert not significant_drop(same, base, "m")
    noisy = {"per_query": {f"q{i}": {"m": 0.5 + (0.2 if i % 2 else -0.21)} for i in range(10)}}
    assert not significant_drop(noisy, base, "m")  # lower on average, but not significantly
