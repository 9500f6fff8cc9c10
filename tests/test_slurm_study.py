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
    "build_stdlib_codesearch", "build_synthetic_text", "resolve_backbone", "prepare_collection",
    "bm25_index", "bm25_search", "encode_queries_and_first_shard", "encode_corpus_shard", "dense_search",
    "training_groups", "train_lora", "evaluate_run", "comparison_table", "axis_table",
}
GPU_RULES = {"encode_queries_and_first_shard", "encode_corpus_shard", "dense_search", "train_lora"}
# The users' profile plus the CI overlay; the CI cluster settings come last.
PROFILE = ["--profile", "slurm", "--profile", "profiles/slurm-ci"]
CONFIG = ["--configfile", "config/mini.yaml", "slice.yaml", "profiles/slurm-ci/cluster.yaml"]
# Every rule, fewest jobs (27): one backbone, one collection per setting.
SLICE = {"settings": {"zeroshot": {"backbones": ["base"], "collections": ["synth-text"]},
                      "supervised": {"backbones": ["base"], "collections": ["stdlib-t2c"]}}}


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
    for table in ("beir", "coir", "supervised"):
        assert (study / f"results/tables/{table}.md").is_file()
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
    code, out = run(smk("--profile", "slurm", "-n", *CONFIG,
                        "--forcerun", "results/models/base/backbone.json"), study)
    assert code == 0, out[-4000:]
    jobs = planned_jobs(out)
    counts = job_counts(jobs)
    assert counts["resolve_backbone"] == counts["train_lora"] == 1
    # Shards beyond the first, per encoding: synth-text (zero-shot) is 2 shards, stdlib-t2c (supervised) 1.
    mini = load_study(study / "config/mini.yaml")
    assert counts["encode_queries_and_first_shard"] == 2
    extra = mini.corpus_shards("synth-text", "zeroshot") - 1 + mini.corpus_shards("stdlib-t2c", "supervised") - 1
    assert counts["encode_corpus_shard"] == extra
    assert counts["encode_corpus_shard"] >= 1
    assert counts["prepare_collection"] == counts["bm25_search"] == counts["bm25_index"] == 0
    assert counts["training_groups"] == 0
    backbones = {w.get("backbone", w.get("retriever")) for rule, w in jobs if rule not in ("comparison_table", "all")}
    assert backbones == {"base"}
