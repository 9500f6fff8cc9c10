"""The comparison tables: paper layout, per-language averaging, published numbers, significance
against Base in every cell (Holm-corrected), bootstrap CIs, reference checks and fidelity."""

import csv
import io
import json
import re
from pathlib import Path

import numpy as np
import pytest
import yaml
from snakemake.utils import validate
from workflow_helpers import ROOT

from llm_retrieval.atomic import write_json
from llm_retrieval.paths import Layout
from llm_retrieval.report import fidelity
from llm_retrieval.report import significance as sig
from llm_retrieval.report.reference import ReferenceTableError, read_reference
from llm_retrieval.report.significance import QuerySetMismatch
from llm_retrieval.report.tables import build, read_table, to_csv_rows, to_markdown, write_table
from llm_retrieval.study import Study


def build_table(study: Study, name: str, metrics_path) -> tuple[str, list[list[str]]]:
    """Markdown text and CSV rows of table ``name``."""
    table = build(study, name, metrics_path)
    return to_markdown(table), to_csv_rows(table)


def paper_study(**report) -> Study:
    config = yaml.safe_load(Path(ROOT / "config/config.yaml").read_text())
    if report:
        config["report"] = report
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return Study(config)


def fake_metrics(root, study, value_of, queries=30):
    """Write a metrics file per unit whose per-query values come from ``value_of(unit, query)``."""
    for unit in study.eval_units():
        per_query = {
            f"q{i}": {
                m: value_of(unit, i) for m in ("ndcg_cut_10", "mrr_10", "recall_100", "recall_200", "recall_1000")
            }
            for i in range(queries)
        }
        aggregate = {m: sum(v[m] for v in per_query.values()) / queries for m in per_query["q0"]}
        write_json(Layout(str(root)).metrics(unit), {"aggregate": aggregate, "per_query": per_query})


def rows_of(csv_rows):
    return {
        row[csv_rows[0].index("dataset") if "dataset" in csv_rows[0] else 0]: dict(zip(csv_rows[0], row))
        for row in csv_rows[1:]
    }


def test_coir_table_averages_languages_and_shows_published_numbers(tmp_path):
    study = paper_study()
    languages = ["go", "java", "javascript", "ruby", "python", "php"]

    def value(unit, query):
        if unit.collection.startswith("codesearchnet-ccr-"):
            return 0.1 * languages.index(unit.collection.rsplit("-", 1)[1])  # 0.0 .. 0.5, mean 0.25
        return 0.5

    fake_metrics(tmp_path, study, value)
    markdown, csv_rows = build_table(study, "coir", Layout(str(tmp_path)).metrics)
    rows = rows_of(csv_rows)
    assert len(rows) == 11  # ten datasets + Avg
    assert rows["CodeSearchNet-CCR"]["Base"] == "0.2500"
    assert rows["CodeSearchNet-CCR"]["task"] == "C2C"
    assert rows["APPS"]["VL-I (paper)"] == "0.1948"
    assert rows["Avg"]["Coder (paper)"] == "0.2994"
    assert "| C2C | CodeSearchNet-CCR | 0.2500 / 0.3469 |" in markdown
    assert rows["APPS"]["Coder (mark)"] == "" and rows["APPS"]["Coder (p_holm)"] == "1"  # identical runs


def test_supervised_table_marks_significant_drops_against_base(tmp_path):
    study = paper_study()

    def value(unit, query):
        if unit.retriever == "math" and unit.query_set == "dev":
            return 0.3 + 0.01 * (query % 3)  # clearly below Base on every dev query
        return 0.5 + 0.01 * (query % 3)

    fake_metrics(tmp_path, study, value)
    markdown, csv_rows = build_table(study, "supervised", Layout(str(tmp_path)).metrics)
    rows = {row[0]: dict(zip(csv_rows[0], row)) for row in csv_rows[1:]}
    assert list(rows)[:2] == ["BM25", "Base"]
    assert rows["Math"]["significant_drop"] == "dev_mrr10;dev_ndcg10;dev_r100;dev_r200;dev_r1000"
    assert rows["Coder"]["significant_drop"] == "" and rows["Base"]["significant_drop"] == ""
    assert rows["Math"]["dev_mrr10 (paper)"] == "0.4150"
    assert re.search(r"\| Math \| 0\.3100▼ \[0\.30\d\d, 0\.31\d\d\] / 0\.4150 \|", markdown)


def noisy_runs(tmp_path, study, shift_of, seed=0):
    """Per-query values: Base's noise plus a per-retriever shift; every retriever sees the same queries."""
    noise = np.random.default_rng(seed).uniform(0.2, 0.8, size=40)
    fake_metrics(tmp_path, study, lambda unit, q: float(noise[q] + shift_of(unit) * (1 + 0.3 * np.sin(q))), 40)


@pytest.mark.parametrize("test", ["ttest", "randomisation"])
def test_every_beir_cell_is_tested_against_base_and_marked_in_md_csv_and_html(tmp_path, test):
    study = paper_study(significance_test=test, permutations=2000)
    shifts = {"coder": 0.1, "math": -0.1}
    noisy_runs(tmp_path, study, lambda unit: shifts.get(unit.retriever, 0.0))
    out = tmp_path / "out"
    table = write_table(
        study, "beir", Layout(str(tmp_path)).metrics, out / "t.md", out / "t.csv", out / "t.html", out / "t.json"
    )
    tested = [c for c in table.cells.values() if c.retriever != "Base"]
    assert len(tested) == 6 * 8 and all(c.p_holm is not None and c.p_holm >= c.p for c in tested)
    assert {c.mark for c in tested if c.retriever == "Coder"} == {"▲"}
    assert {c.mark for c in tested if c.retriever == "Math"} == {"▼"}
    assert {c.mark for c in tested if c.retriever == "Instruct"} == {""}
    assert all(c.win_tie_loss == (0, 40, 0) for c in tested if c.retriever == "Instruct")
    rows = rows_of(list(csv.reader(io.StringIO((out / "t.csv").read_text()))))
    assert rows["FiQA"]["Coder (mark)"] == "▲" and rows["FiQA"]["Math (mark)"] == "▼"
    assert "▲" in (out / "t.md").read_text() and "▼" in (out / "t.html").read_text()
    assert read_table(out / "t.json").cell("Math", "FiQA").mark == "▼"
    low, high = table.averages["Base"].ci
    assert low < table.averages["Base"].ours < high and high - low < 0.1


def test_holm_adjusts_step_down_and_keeps_order():
    assert sig.holm([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.06, 0.06])
    assert sig.holm([0.2, 0.9]) == pytest.approx([0.4, 0.9])


def test_randomisation_and_ttest_agree_on_clear_and_null_differences():
    rng = np.random.default_rng(1)
    b = rng.uniform(0, 1, 60)
    assert sig.paired_randomisation(b + 0.2, b, 2000) < 0.01 and sig.paired_ttest(b + 0.2, b) < 0.01
    noise = rng.normal(0, 0.1, 60)
    assert sig.paired_randomisation(b + noise - noise.mean(), b, 2000) > 0.5
    assert sig.paired_ttest(b, b) == 1.0


def test_unequal_query_sets_are_an_error_naming_the_cell(tmp_path):
    study = paper_study()
    fake_metrics(tmp_path, study, lambda unit, q: 0.5)
    path = tmp_path / Layout(".").metrics(
        next(u for u in study.eval_units() if u.retriever == "coder" and u.collection == "fiqa")
    )
    metrics = json.loads(path.read_text())
    del metrics["per_query"]["q3"]
    path.write_text(json.dumps(metrics))
    with pytest.raises(QuerySetMismatch, match=r"beir, FiQA: Coder vs Base.*1 only in the anchor.*'q3'"):
        build(study, "beir", Layout(str(tmp_path)).metrics)


@pytest.mark.parametrize(
    "text, message",
    [
        ("name,BM25\nFiQA,0.2\n", r"line 1: missing column 'dataset'"),
        ("dataset,BM25,Base\nFiQA,0.2,n/a\n", r"line 2, column 'Base': 'n/a' is not a number"),
        ("dataset,BM25\nFiQA,0.2,0.3\n", r"line 2: 3 fields, the header has 2"),
        ("", "empty file"),
    ],
)
def test_malformed_reference_is_a_named_error_with_file_and_line(tmp_path, text, message):
    path = tmp_path / "ref.csv"
    path.write_text(text)
    with pytest.raises(ReferenceTableError, match=message) as err:
        read_reference(path, "dataset")
    assert str(path) in str(err.value)


def test_published_names_the_study_does_not_use_are_listed_as_not_compared(tmp_path):
    study = paper_study()
    study.config["settings"]["zeroshot"]["backbones"] = ["base", "coder"]
    study.config["settings"]["zeroshot"]["collections"] = ["fiqa", "nfcorpus"]
    fake_metrics(tmp_path, study, lambda unit, q: 0.3)
    table = build(study, "beir", Layout(str(tmp_path)).metrics)
    assert "dataset Quora" in table.not_compared and "column VL-I" in table.not_compared
    assert "dataset FiQA" not in table.not_compared and "column Coder" not in table.not_compared
    assert table.averages["Base"].paper is None  # the published Avg covers other datasets


def test_fidelity_reports_differences_and_rank_agreement(tmp_path):
    study = paper_study()
    reference = {
        row["dataset"]: row
        for row in csv.DictReader(Path(ROOT / "resources/reference/table1_beir_zeroshot.csv").read_text().splitlines())
    }
    labels = {b: study.backbone(b)["label"] for b in study.backbones} | {"bm25": "BM25"}

    def published_plus(unit, q):  # ours = published + 0.01, but FiQA's Base 0.07 higher (above Instruct)
        row = study.collection(unit.collection)["label"]
        extra = 0.07 if (row, unit.retriever) == ("FiQA", "base") else 0.01
        return float(reference[row][labels[unit.retriever]]) + extra if row in reference else 0.5

    fake_metrics(tmp_path, study, published_plus)
    result = fidelity.fidelity(build(study, "beir", Layout(str(tmp_path)).metrics), 0.02)
    assert result["compared_cells"] == 6 * 9
    assert result["max_abs_diff"] == pytest.approx(0.07)
    assert result["mean_abs_diff"] == pytest.approx((53 * 0.01 + 0.07) / 54)
    assert [(c["retriever"], c["item"]) for c in result["cells_over_threshold"]] == [("Base", "FiQA")]
    assert result["kendall_tau_per_dataset"]["Quora"]["kendall_tau"] == pytest.approx(1.0)
    assert 0.9 < result["kendall_tau_per_dataset"]["FiQA"]["kendall_tau"] < 1.0
    assert "| Base | FiQA |" in fidelity.to_markdown(result)


BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"


def test_cost_sums_benchmarks_per_stage_and_backbone_times_the_gpus_each_job_holds(tmp_path):
    from llm_retrieval.report import cost

    config = yaml.safe_load(Path(ROOT / "config/config.yaml").read_text())
    for rel, seconds in [
        ("encode_corpus_shard/zeroshot/base/fiqa/shard-0.tsv", 3600),
        ("encode_corpus_shard/zeroshot/coder/fiqa/shard-0.tsv", 1800),
        ("train_lora/base.tsv", 900),
        ("bm25_index/fiqa.tsv", 7200),
    ]:
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(BENCH_HEADER + f"{seconds}\t-\t1234.5\t0\t0\t0\t0\t0\t0\t{seconds / 2}\n")
    jobs = cost.measured(config, tmp_path)
    by_rule = {r["rule"]: r for r in cost.summarise(jobs, "rule")}
    assert by_rule["encode_corpus_shard"]["gpu_h_requested"] == pytest.approx(1.5)  # one GPU each
    assert by_rule["train_lora"]["gpu_h_requested"] == pytest.approx(0.25 * config["training"]["world_size"])
    assert by_rule["bm25_index"]["gpu_h_requested"] == 0 and by_rule["bm25_index"]["cpu_h"] == pytest.approx(2 * 16)
    by_backbone = {r["backbone"]: r for r in cost.summarise(jobs, "backbone")}
    assert set(by_backbone) == {"base", "coder", "bm25"}
    assert by_backbone["base"]["gpu_h_requested"] == pytest.approx(1 + 0.25 * 8)
    assert by_backbone["base"]["max_rss_mb"] == pytest.approx(1234.5)
    from llm_retrieval import cost_estimate

    projected = cost_estimate.config_projection(ROOT / "config/config.yaml")
    assert {r["label"] for r in projected.rows} == {"estimate"}
    assert {(r["stage"], r["setting"]) for r in projected.rows} == {
        ("encode", "zeroshot"),
        ("encode", "supervised"),
        ("train", "supervised"),
    }
    markdown = cost.to_markdown(jobs, projected)
    assert "| encode_corpus_shard | 2 | 5400.0 |" in markdown and "**estimate**" in markdown


def test_summary_names_the_winner_the_margin_and_the_demo_caveat(tmp_path):
    from llm_retrieval.report import summary

    study = paper_study()
    shifts = {"coder": 0.1, "math": -0.1}
    noisy_runs(tmp_path, study, lambda unit: shifts.get(unit.retriever, 0.0))
    table = build(study, "beir", Layout(str(tmp_path)).metrics)
    text = summary.opening([table], [fidelity.fidelity(table)])
    assert re.search(
        r"Coder has the highest average nDCG@10 \(0\.\d{3}, \+0\.\d{3} over \S+\) and leads on "
        r"6 of 6 datasets",
        text,
    )
    assert "Coder is significantly above Base in 6 of 6 datasets; Math significantly below Base in 6" in text
    assert "Demo caveat" not in text  # hub models, not random weights
    table.random_weights = True
    assert "Demo caveat" in summary.opening([table], [fidelity.fidelity(table)])


def test_figures_are_written_as_svg_and_png_for_every_kind(tmp_path):
    from llm_retrieval.report import FIGURE_KINDS
    from llm_retrieval.report.figures import draw_all

    study = paper_study()
    noisy_runs(tmp_path, study, lambda unit: 0.05 if unit.retriever == "coder" else 0.0)
    written = draw_all(build(study, "supervised", Layout(str(tmp_path)).metrics), tmp_path / "fig")
    assert sorted(p.name for p in written) == sorted(f"{k}.{f}" for k in FIGURE_KINDS for f in ("svg", "png"))
    assert all(p.stat().st_size > 2000 for p in written)
    assert (tmp_path / "fig/heatmap.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Kendall" in (tmp_path / "fig/scatter.svg").read_text()
