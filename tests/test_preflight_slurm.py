"""`snakemake --profile slurm preflight` on the local Slurm (.ci/slurm-up): the report it writes, with one
deliberately failing check. The CPU cluster's CPU partition is `short` (MaxTime 25 min); each CPU kind
asks 15 min, and its retry twice that: attempt 1 fits, attempts 2 and 3 do not."""

import json
import re
import sys

import pytest
import yaml
from slurm_helpers import CI_CLUSTER, PROFILES, require_cluster, run
from workflow_helpers import scratch_copy

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(900)]

CPU_KINDS = ("data", "bm25", "resolve_backbone", "evaluate", "report", "training_groups")
OVERLAY = {
    "preflight": {"expect_gpu": False},  # the CI cluster's GPUs are fake: the GPU checks are skipped, said so
    "slurm": {
        "partitions": {"cpu": "short", "gpu": "gpu"},
        "max_runtime": 40,
        "runtime_growth": 2.0,
        "kinds": {kind: {"runtime": 15} for kind in CPU_KINDS},
    },
}


@pytest.fixture(scope="module")
def preflight(tmp_path_factory):
    require_cluster()
    wd = scratch_copy(tmp_path_factory.mktemp("preflight"))
    (wd / "overlay.yaml").write_text(yaml.safe_dump(OVERLAY))
    cmd = [
        sys.executable,
        "-m",
        "snakemake",
        *PROFILES,
        "preflight",
        "--configfile",
        "config/demo.yaml",
        CI_CLUSTER,
        "overlay.yaml",
    ]
    code, out = run(cmd, wd, timeout=800)
    assert code == 0, out[-6000:]
    report = wd / "results/preflight/report.md"
    return report.read_text(), json.loads((wd / "results/preflight/report.json").read_text())


def lines(report, start):
    return [line for line in report.splitlines() if line.startswith(start)]


def test_a_retry_above_the_partition_time_limit_is_a_failed_line_saying_what_to_set(preflight):
    report, _ = preflight
    assert lines(report, "- ✔ resources of resolve_backbone, attempt 1: -A ci -p short -t 15 ")
    refused = lines(report, "- ✗ resources of resolve_backbone, attempt 2: -A ci -p short -t 30 ")
    assert refused and "partition short allows 25 min (MaxTime): set slurm.max_runtime: 25" in refused[0]
    assert lines(report, "- ✗ resources of resolve_backbone, attempt 3: -A ci -p short -t 40 ")


def test_every_rule_and_attempt_is_tried_with_the_plugins_sbatch_line(preflight):
    report, result = preflight
    tried = {c["name"] for c in result["checks"] if c["section"] == "job resources at every retry attempt"}
    for rule in ("train_lora", "encode_corpus_shard", "dense_search", "evaluate_run", "preflight_train"):
        assert {f"resources of {rule}, attempt {a}" for a in (1, 2, 3)} <= tried, rule
    # GPU kinds: the fake GPUs by model, accepted by sbatch --test-only; training keeps its time (resumable),
    # asks its ranks' GPUs per node and the early-warning signal.
    encode = lines(report, "- ✔ resources of encode_corpus_shard, attempt 3:")[0]
    assert "--gpus=fake:1" in encode and "accepted by sbatch --test-only" in encode
    train = lines(report, "- ✔ resources of preflight_train, attempt 1:")[0]
    assert "--ntasks-per-node=2" in train and "--gres=gpu:fake:2" in train and "--signal=USR1@" in train


def test_the_tiny_model_runs_the_real_paths_under_slurm_on_cpu(preflight):
    report, _ = preflight
    for check in (
        "tiny model built from config",
        "encode_queries_and_first_shard: tiny model encodes",
        "encode_corpus_shard: shared prefix = plain encoding",
        "search: tiny corpus searched",
        "train_lora: SIGTERM after step 1 checkpoints and exits for retry",
        "train_lora: the retry resumes and finishes",
        "shared file system",
        "hub: pins lock complete",
        "hub: token for gated models",
    ):
        assert lines(report, f"- ✔ {check}:"), (check, report)
    # The job exits 75 itself, or 143 when srun's --kill-on-bad-exit ends the ranks still exiting after the
    # checkpoint barrier (which of the two depends on process timing); either way every rank exited 75.
    assert re.search(
        r"exit (75|143 \(75 from the ranks\)) with checkpoint step-00000001 over 2 ranks \(srun, gloo\)", report
    )
    assert "resumed at step 1, 2 steps under ZeRO-3" in report


def test_gpu_checks_on_a_cpu_cluster_are_skipped_with_the_reason(preflight):
    report, result = preflight
    for kind in ("encode_queries_and_first_shard", "encode_corpus_shard", "search", "train_lora"):
        gpus = lines(report, f"- – {kind}: GPUs — none on")
        assert gpus and "preflight.expect_gpu is false" in gpus[0], kind
    counts = result["counts"]
    assert counts["failed"] == sum(1 for c in result["checks"] if c["status"] == "failed") > 0
    assert all(c["advice"] for c in result["checks"] if c["status"] != "ok")
