"""The cost page cannot be misread: GPU-hours requested on the cluster apart from GPU-hours used, each
column defined above its table, and the jobs counted as Snakemake counts its steps, less those named."""

from __future__ import annotations

import logging

import pytest
import yaml
from workflow_helpers import ROOT

from llm_retrieval import joblog
from llm_retrieval.report import cost, summary

BENCH_HEADER = "s\th:m:s\tmax_rss\tmax_vms\tmax_uss\tmax_pss\tio_in\tio_out\tmean_load\tcpu_time\n"
ENCODE = "encode_corpus_shard/zeroshot/base/fiqa/shard-0"


def paper_config() -> dict:
    return yaml.safe_load((ROOT / "config/config.yaml").read_text())


def write_job(results, rel: str, seconds: float, gpus_seen: int | None) -> None:
    bench = results / "benchmarks" / f"{rel}.tsv"
    bench.parent.mkdir(parents=True, exist_ok=True)
    bench.write_text(BENCH_HEADER + f"{seconds}\t-\t100\t0\t0\t0\t0\t0\t0\t{seconds}\n")
    if gpus_seen is not None:
        log = results / "logs" / f"{rel}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text(f"2026-01-01 00:00:00 INFO llm_retrieval: {joblog.GPUS_SEEN} {gpus_seen}\n")


def table_of(markdown: str, header_start: str) -> list[str]:
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(header_start))
    return lines[start - 2 : start + 3]


def test_a_cpu_only_run_requests_gpu_hours_on_the_cluster_but_uses_none(tmp_path):
    write_job(tmp_path, ENCODE, 3600, gpus_seen=0)
    write_job(tmp_path, "bm25_index/fiqa", 1800, gpus_seen=0)
    jobs = cost.measured(paper_config(), tmp_path / "benchmarks")
    encode = next(j for j in jobs if j["rule"] == "encode_corpus_shard")
    assert encode["gpu_h_requested"] == pytest.approx(1.0) and encode["gpu_h_used"] == 0
    note, _, header, _, row = table_of(cost.to_markdown(jobs, []), "| stage |")
    assert note == cost.MEASURED_NOTE  # the line right above the table says how each column is computed
    assert "**GPU-h requested on the cluster** = wall time × the GPUs the job's kind holds" in note
    assert "**GPU-h used** = the same, only for jobs that saw a GPU" in note
    assert header == "| stage | jobs | wall s | max RSS MB | GPU-h requested on the cluster | GPU-h used | CPU-h |"
    assert row.startswith("| bm25_index |")
    encode_row = next(line for line in cost.to_markdown(jobs, []).splitlines() if line.startswith("| encode_"))
    assert encode_row.split(" | ")[4:6] == ["1.0000", "–"]


def test_a_job_that_saw_a_gpu_counts_its_hours_as_used(tmp_path):
    write_job(tmp_path, ENCODE, 3600, gpus_seen=1)
    write_job(tmp_path, "encode_corpus_shard/zeroshot/coder/fiqa/shard-0", 1800, gpus_seen=None)  # no log: unknown
    jobs = cost.measured(paper_config(), tmp_path / "benchmarks")
    (row,) = cost.summarise(jobs, "rule")
    assert row["gpu_h_requested"] == pytest.approx(1.5) and row["gpu_h_used"] == pytest.approx(1.0)
    csv_header = cost.write_csv(jobs, []).splitlines()[0].split(",")
    assert {"gpu_h_requested", "gpu_h_used", "gpus_seen"} <= set(csv_header) and "gpu_h" not in csv_header


def test_the_reports_last_two_jobs_are_not_counted_and_the_page_says_which_steps_are_left_out(tmp_path):
    write_job(tmp_path, ENCODE, 60, gpus_seen=0)
    for rel in ("cost_table/cost", "report_summary/summary"):  # left by an earlier run
        write_job(tmp_path, rel, 5, gpus_seen=0)
    jobs = cost.measured(paper_config(), tmp_path / "benchmarks")
    assert [j["rule"] for j in jobs] == ["encode_corpus_shard"]
    assert cost.STEPS_NOT_MEASURED == 3  # with the target rule all: Snakemake's "N of N steps" is jobs + 3
    markdown = cost.to_markdown(jobs, [])
    assert "Total: 1 jobs (3 fewer than Snakemake's steps: cost_table, report_summary, all)" in markdown
    sentence = summary.cost_sentence({"measured": jobs, "projected": [{"gpu_h": 1000.0}]})
    assert sentence.startswith("This run: 1 jobs (every step but cost_table, report_summary and the target rule")
    assert "no GPU used" in sentence and "1,000 GPU-h (estimate" in sentence


def test_every_job_logs_the_gpus_visible_to_it(tmp_path, monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0,1")
    log = tmp_path / "job.log"
    with joblog.job_log(log):
        logging.getLogger("llm_retrieval").info("working")
    assert joblog.gpus_seen(log) == 2
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    assert joblog.visible_gpus() == 0
    assert joblog.gpus_seen(tmp_path / "missing.log") is None


@pytest.mark.slow
def test_the_cost_page_counts_every_step_snakemake_counts_but_the_three_it_names(finished_mini):
    import json
    import re

    from workflow_helpers import snakemake

    plan = snakemake(finished_mini, "-n", "--forceall", "--configfile", "config/mini.yaml")
    steps = int(re.search(r"^total\s+(\d+)", plan.stdout + plan.stderr, flags=re.MULTILINE).group(1))
    measured = json.loads((finished_mini / "results/report/cost.json").read_text())["measured"]
    assert len(measured) == steps - cost.STEPS_NOT_MEASURED
    assert (
        f"Total: {len(measured)} jobs (3 fewer than Snakemake's steps"
        in (finished_mini / "results/report/cost.md").read_text()
    )
