"""What the run cost, from Snakemake's benchmark TSVs, and what the paper's study would cost.

Measured: every ``results/benchmarks/<rule>/...tsv`` (wall seconds ``s``, ``max_rss`` in MB,
``cpu_time``) but the report's last two jobs (``NOT_MEASURED``), times what the job holds on the
cluster (``llm_retrieval.cluster``: GPUs for the GPU kinds, CPUs = threads), summed per stage (rule)
and per backbone. Two GPU-hour columns, so that a CPU-only run cannot be read as GPU use:
"GPU-h requested on the cluster" (wall x GPUs the job's kind holds, whatever the machine) and
"GPU-h used" (the same, only for jobs whose log says they saw a GPU, ``joblog.GPUS_SEEN``).

Projection for the paper study: :mod:`llm_retrieval.cost_estimate`, the one estimate the docs print
too (from the plan, with its assumptions). Every projected row is labelled "estimate": no GPU
measurement exists for it.
"""

from __future__ import annotations

import csv
import math
from collections import defaultdict
from pathlib import Path

from .. import cluster, cost_estimate, joblog
from .render import markdown_table

# The kind of job each rule asks for where it is not the rule's own name (workflow/rules/*.smk);
# rules named after their kind (resolve_backbone, training_groups, train_lora, encode_*) need no entry.
KIND_OF_RULE = {
    "prepare_collection": "data",
    "build_stdlib_codesearch": "data",
    "build_synthetic_text": "data",
    "bm25_index": "bm25",
    "bm25_search": "bm25",
    "dense_search": "search",
    "evaluate_run": "evaluate",
    "comparison_table": "report",
    "report_figures": "report",
    "cost_table": "report",
    "report_summary": "report",
    "axis_table": "report",
}


# The report's last two jobs read every other job's benchmark, so neither is done when the cost is
# written; with Snakemake's target rule `all` (no benchmark) they are the steps the cost leaves out.
NOT_MEASURED = ("cost_table", "report_summary")
STEPS_NOT_MEASURED = len(NOT_MEASURED) + 1
MEASURED_NOTE = (
    "Measured, from the Snakemake benchmark file of every job except the report's last two ("
    + ", ".join(NOT_MEASURED)
    + f"), which with the target rule `all` are the {STEPS_NOT_MEASURED} steps Snakemake counts beyond these. "
    "**GPU-h requested on the cluster** = wall time × the GPUs the job's kind holds on the cluster "
    "(`slurm.kinds`), also where this machine has no GPU; **GPU-h used** = the same, only for jobs that saw a "
    "GPU (each job logs the GPUs visible to it), '–' where none did; **CPU-h** = wall time × the CPUs held."
)


class BenchmarkError(ValueError):
    """A benchmark TSV that is not Snakemake's format."""


def held(config: dict, rule: str) -> tuple[int, int]:
    """(GPUs, CPUs) a job of ``rule`` holds on the cluster; rules of no known kind count as 1 CPU."""
    kinds = cluster.slurm_settings(config)["kinds"]
    kind = rule if rule in kinds else KIND_OF_RULE.get(rule)
    if kind not in kinds:
        return 0, 1
    threads = cluster.rule_threads(config, kind)
    if kind not in cluster.GPU_KINDS:
        return 0, threads
    if kind.startswith("train"):
        ranks = int((config.get("training") or {}).get("world_size", 1))
        return ranks, threads * ranks
    return int(kinds[kind].get("gpus", 1)), threads


def read_benchmark(path: Path) -> dict:
    with open(path, encoding="utf-8", newline="") as stream:
        rows = list(csv.DictReader(stream, delimiter="\t"))
    if not rows or "s" not in rows[0]:
        raise BenchmarkError(f"{path}: not a Snakemake benchmark file (expected a header with 's' and rows)")

    def mean(key):
        values = [float(r[key]) for r in rows if r.get(key) not in (None, "", "NA", "-")]
        return sum(values) / len(values) if values else 0.0

    return {
        "s": mean("s"),
        "max_rss": max(
            (float(r["max_rss"]) for r in rows if r.get("max_rss") not in (None, "", "NA", "-")), default=0.0
        ),
        "cpu_time": mean("cpu_time"),
    }


def measured(config: dict, benchmarks: str | Path, logs: str | Path | None = None) -> list[dict]:
    """One record per benchmark TSV: rule, backbone, wall s, max RSS, GPUs/CPUs held, GPUs seen,
    GPU-h requested and used, CPU-h. A job's log (``logs``, default the benchmarks' sibling ``logs``
    folder, same relative path) says the GPUs it saw."""
    root = Path(benchmarks)
    logs = Path(logs) if logs else root.parent / "logs"
    names = set(config.get("backbones", {}))
    jobs = []
    for path in sorted(root.rglob("*.tsv")):
        rel = path.relative_to(root)
        rule = rel.parts[0].removesuffix(".tsv")
        if rule in NOT_MEASURED:
            continue
        parts = [p.removesuffix(".tsv") for p in rel.parts[1:]]
        backbone = next(
            (p for p in parts if p in names), "bm25" if "bm25" in parts or rule.startswith("bm25") else "shared"
        )
        bench = read_benchmark(path)
        gpus, cpus = held(config, rule)
        seen = joblog.gpus_seen((logs / rel).with_suffix(".log"))
        jobs.append(
            {
                "rule": rule,
                "job": str(rel),
                "backbone": backbone,
                "recipe": recipe_of_job(config, rule, parts),
                "wall_s": bench["s"],
                "max_rss_mb": bench["max_rss"],
                "cpu_time_s": bench["cpu_time"],
                "gpus": gpus,
                "cpus": cpus,
                "gpus_seen": seen,
                "gpu_h_requested": bench["s"] * gpus / 3600,
                "gpu_h_used": bench["s"] * gpus / 3600 if seen else 0.0,
                "cpu_h": bench["s"] * cpus / 3600,
            }
        )
    return jobs


RETRIEVER_RULES = (
    "encode_queries_and_first_shard",
    "encode_queries_only",
    "encode_corpus_shard",
    "dense_search",
    "evaluate_run",
)


def recipe_of_job(config: dict, rule: str, parts: list[str]) -> str | None:
    """The training recipe a job belongs to: a training job's own (``train_lora/<recipe>/<backbone>``), the one
    whose retriever a supervised setting's encode / search / evaluate job uses; None for every other job."""
    from ..axes import base_of, recipe_of

    if rule == "train_lora" and len(parts) == 2:
        return parts[0]
    setting = parts[0] if parts else ""
    if rule in RETRIEVER_RULES and base_of(setting) == "supervised" and config.get("training"):
        return recipe_of(config, setting)
    return None


MAXIMA = ("max_rss_mb",)  # summarised as the largest; every other number is summed


def summarise(jobs: list[dict], key: str) -> list[dict]:
    """Per value of ``key``: the number of jobs, the sum of each numeric field (the largest RSS)."""
    groups: dict[str, dict] = defaultdict(lambda: {"jobs": 0})
    for job in jobs:
        g = groups[job[key]]
        g["jobs"] += 1
        for name, value in job.items():
            if name == key or isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            g[name] = max(g.get(name, 0.0), value) if name in MAXIMA else g.get(name, 0.0) + value
    return [{key: name, **values} for name, values in sorted(groups.items())]


def _h(value: float) -> str:
    return f"{value:.4f}" if value < 10 else f"{value:,.1f}"


def _used(value: float) -> str:
    return _h(value) if value else "–"


def to_markdown(jobs: list[dict], projected: cost_estimate.Projection | None = None, study: str | None = None) -> str:
    """The cost page: measured jobs per stage and backbone, then the projection of the full study (if given;
    ``study``: its config file, report.projected_study)."""
    lines = ["## Cost", "", MEASURED_NOTE, ""]
    for key, title in (("rule", "stage"), ("backbone", "backbone")):
        header = [title, "jobs", "wall s", "max RSS MB", "GPU-h requested on the cluster", "GPU-h used", "CPU-h"]
        rows = [
            [
                row[key],
                row["jobs"],
                f"{row['wall_s']:.1f}",
                f"{row['max_rss_mb']:.0f}",
                _h(row["gpu_h_requested"]),
                _used(row["gpu_h_used"]),
                _h(row["cpu_h"]),
            ]
            for row in summarise(jobs, key)
        ]
        lines += [markdown_table(header, rows), ""]
    lines += _per_recipe(jobs)
    total = {k: sum(j[k] for j in jobs) for k in ("wall_s", "gpu_h_requested", "gpu_h_used", "cpu_h")}
    lines += [
        (
            f"Total: {len(jobs)} jobs ({STEPS_NOT_MEASURED} fewer than Snakemake's steps: "
            f"{', '.join(NOT_MEASURED)}, all), {total['wall_s']:.1f} s of job wall time, "
            f"{_h(total['gpu_h_requested'])} GPU-h requested on the cluster, {_used(total['gpu_h_used'])} GPU-h "
            f"used, {_h(total['cpu_h'])} CPU-h."
        ),
        "",
    ]
    if projected:  # None (or no rows): a page of measurements only
        lines += [
            cost_estimate.to_markdown(projected) if study is None else cost_estimate.to_markdown(projected, study)
        ]
    return "\n".join(lines)


def _per_recipe(jobs: list[dict]) -> list[str]:
    """Each training recipe's jobs: its training and the encoding, search and evaluation of its retriever."""
    jobs = [j for j in jobs if j.get("recipe")]
    if not jobs:
        return []
    lines = [
        "Per training recipe (its training jobs, and the encode / search / evaluate jobs of its retriever):",
        "",
    ]
    header = ["recipe", "jobs", "training jobs", "wall s", "GPU-h requested on the cluster", "GPU-h used", "CPU-h"]
    rows = []
    for row in summarise(jobs, "recipe"):
        trained = sum(1 for j in jobs if j["recipe"] == row["recipe"] and j["rule"] == "train_lora")
        rows.append(
            [
                row["recipe"],
                row["jobs"],
                trained,
                f"{row['wall_s']:.1f}",
                _h(row["gpu_h_requested"]),
                _used(row["gpu_h_used"]),
                _h(row["cpu_h"]),
            ]
        )
    return lines + [markdown_table(header, rows), ""]


def write_csv(jobs: list[dict], projected: list[dict]) -> str:
    out = [
        (
            "kind,rule_or_stage,job,backbone,wall_s,max_rss_mb,gpus,cpus,gpus_seen,gpu_h_requested,gpu_h_used,"
            "gpu_h_estimated,cpu_h,label"
        )
    ]
    for j in jobs:
        seen = "" if j["gpus_seen"] is None else j["gpus_seen"]
        out.append(
            f"measured,{j['rule']},{j['job']},{j['backbone']},{j['wall_s']:.3f},{j['max_rss_mb']:.1f},"
            f"{j['gpus']},{j['cpus']},{seen},{j['gpu_h_requested']:.6f},{j['gpu_h_used']:.6f},,"
            f"{j['cpu_h']:.6f},measured"
        )
    for r in projected:
        out.append(f"projected,{r['stage']} ({r['setting']}),,{r['backbone']},,,,,,,,{r['gpu_h']:.3f},,estimate")
    return "\n".join(out) + "\n"


def total_gpu_h(rows) -> float:
    return math.fsum(r["gpu_h"] for r in rows)
