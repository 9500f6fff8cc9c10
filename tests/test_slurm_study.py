"""The study itself on the local Slurm (.ci/slurm-up), through the users'
profile: the dry run, a slice of the demo that still runs every rule (the
mini config of the workflow tests, one zero-shot backbone), and the
single-backbone partial rerun."""

import sys

import pytest
import yaml
from slurm_helpers import assert_ran_under_slurm, require_cluster, run, slurm_job
from workflow_helpers import job_counts, load_study, planned_jobs, scratch_copy

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(900)]

RULES = {
    "build_stdlib_codesearch",
    "build_synthetic_text",
    "resolve_backbone",
    "prepare_collection",
    "bm25_index",
    "bm25_search",
    "encode_queries_and_first_shard",
    "encode_corpus_shard",
    "dense_search",
    "training_groups",
    "train_lora",
    "evaluate_run",
    "comparison_table",
    "axis_table",
    "report_figures",
    "cost_table",
    "report_summary",
}
GPU_RULES = {"encode_queries_and_first_shard", "encode_corpus_shard", "dense_search", "train_lora"}
# The users' profile plus the CI overlay; the CI cluster settings come last.
PROFILE = ["--profile", "slurm", "--profile", "profiles/slurm-ci"]
CONFIG = ["--configfile", "config/mini.yaml", "slice.yaml", "profiles/slurm-ci/cluster.yaml"]
# Every rule, fewest jobs (27): one backbone, one collection per setting.
SLICE = {
    "settings": {
        "zeroshot": {"backbones": ["base"], "collections": ["synth-text"]},
        "supervised": {"backbones": ["base"], "collections": ["stdlib-t2c"]},
    }
}


def smk(*args):
    return [sys.executable, "-m", "snakemake", *args]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    require_cluster()
    wd = scratch_copy(tmp_path_factory.mktemp("slurm-study"))
    (wd / "slice.yaml").write_text(yaml.safe_dump(SLICE))
    return wd


def test_dry_run_through_the_users_profile(study):
    code, out = run(smk("--profile", "slurm", "-n", *CONFIG), study)
    assert code == 0, out[-4000:]
    assert set(job_counts(planned_jobs(out))) == RULES


def test_demo_slice_runs_every_rule_as_slurm_jobs(study):
    code, out = run(smk(*PROFILE, *CONFIG), study, timeout=800)
    assert code == 0, out[-6000:]
    # The tables that have a dataset in the slice (it holds no CoIR collection: no CoIR table is made).
    sliced = load_study(study / "config/mini.yaml", SLICE)
    made = {t for t in sliced.config["tables"] if sliced.table_collections(t)}
    assert made == {"beir", "supervised"}
    for table in sliced.config["tables"]:
        assert (study / f"results/tables/{table}.md").is_file() == (table in made), table
    subs = assert_ran_under_slurm(out, RULES)
    # Slurm's own record: GPU kinds on the gpu partition with a (fake) GPU, the rest on cpu.
    for job_id, log in subs:
        rule = log.split("/slurm/rule_")[1].split("/")[0]
        job = slurm_job(job_id)
        if rule in GPU_RULES:
            assert job["Partition"] == "gpu", (rule, job)
            assert "gpu" in job.get("TresPerJob", "") + job.get("TresPerNode", ""), (rule, job)
        else:
            assert job["Partition"] == "cpu", (rule, job)

    code, out = run(smk(*PROFILE, *CONFIG, "-n"), study)
    assert code == 0 and "Nothing to be done" in out, out[-3000:]


def test_single_backbone_rerun_through_the_profile(study):
    if not (study / "results/tables/beir.md").exists():
        pytest.skip("needs the finished slice of test_demo_slice_runs_every_rule_as_slurm_jobs")
    code, out = run(smk("--profile", "slurm", "-n", *CONFIG, "--forcerun", "results/models/base/backbone.json"), study)
    assert code == 0, out[-4000:]
    jobs = planned_jobs(out)
    counts = job_counts(jobs)
    assert counts["resolve_backbone"] == counts["train_lora"] == 1
    # One encoding per (setting or axis variant, collection) of the slice, and its shards beyond the first.
    sliced = load_study(study / "config/mini.yaml", SLICE)
    encodings = [(s, c) for s in sliced.dense_settings() for c in sliced.collections_of(s)]
    assert counts["encode_queries_and_first_shard"] == len(encodings)
    assert counts["encode_corpus_shard"] == sum(sliced.corpus_shards(c, s) - 1 for s, c in encodings)
    assert counts["encode_corpus_shard"] >= 1
    assert counts["prepare_collection"] == counts["bm25_search"] == counts["bm25_index"] == 0
    assert counts["training_groups"] == 0
    aggregates = ("comparison_table", "axis_table", "report_figures", "cost_table", "report_summary", "all")
    backbones = {w.get("backbone", w.get("retriever")) for rule, w in jobs if rule not in aggregates}
    assert backbones == {"base"}
