"""The profiles on a real Slurm (.ci/slurm-up), with a toy stand-in for the
study (tests/fixtures/slurm_toy: prepare -> 2 fake-GPU encode shards ->
2-rank training via srun -> report). Faults: a cancelled job and a job hitting
its time limit are retried and the workflow completes; a killed head process
is recovered by rerunning the same command; an sbatch refusal is a clear error
that loses nothing."""

import shutil
import subprocess

import pytest
import yaml
from slurm_helpers import (
    CI_CLUSTER,
    REPO,
    assert_ran_under_slurm,
    kill_head,
    require_cluster,
    run,
    slurm_job,
    snakemake_cmd,
    start,
    wait_for,
)

pytestmark = [pytest.mark.slurm, pytest.mark.slow, pytest.mark.timeout(600)]
RULES = ("prepare", "encode", "train", "report")


@pytest.fixture
def toy(tmp_path):
    require_cluster()
    wf = tmp_path / "toy"
    shutil.copytree(REPO / "tests/fixtures/slurm_toy", wf)
    (wf / "rules").mkdir()
    shutil.copy(REPO / "workflow/rules/resources.smk", wf / "rules/resources.smk")
    return wf


def toy_cmd(wf, settings=None, *args):
    """snakemake through the users' profile + the CI overlay, with the CI
    cluster settings and this test's settings as extra config files."""
    files = [CI_CLUSTER]
    if settings:
        (wf / "test.yaml").write_text(yaml.safe_dump(settings))
        files.append("test.yaml")
    return snakemake_cmd("--configfile", *files, *args)


def starts(wf, name):
    """Lines of a job's start marker: one per attempt that began running."""
    path = wf / "markers" / f"{name}.starts"
    return path.read_text().splitlines() if path.exists() else []


def test_killed_head_rerun_finishes_without_redoing_finished_jobs(toy):
    """Also the plain run: every rule goes through sbatch, GPU jobs get the
    fake GPUs, training's ranks are started by srun across the allocation."""
    settings = {"sleep": {"prepare": 1, "encode": 8}}
    code, out = run(toy_cmd(toy, settings, "-n"), toy)
    assert code == 0, out
    assert "prepare" in out and "train" in out

    log = toy / "head1.log"
    head = start(toy_cmd(toy, settings), toy, log)
    wait_for(lambda: starts(toy, "encode-0") and starts(toy, "encode-1"), 120, "both encode shards running", head, log)
    kill_head(head)
    assert (toy / "out/data.txt").exists() and not (toy / "out/shard-0.txt").exists()

    # The killed head left its lock; the same command reclaims it and finishes.
    assert (toy / ".snakemake/locks").exists()
    code, out = run(toy_cmd(toy, settings), toy)
    assert code == 0, out[-4000:]
    assert (toy / "out/report.txt").is_file()
    assert len(starts(toy, "prepare")) == 1, "finished job redone after the head was killed"
    assert_ran_under_slurm(out, ("encode", "train", "report"))
    assert_ran_under_slurm((log.read_text()), ("prepare",))

    # GPU jobs got one fake GPU each through GRES.
    for shard in (0, 1):
        last = starts(toy, f"encode-{shard}")[-1]
        assert "gpus=none" not in last and "job=none" not in last, last
    # Training: one srun task per fake GPU, the submitit helper read the ranks.
    ranks = [yaml.safe_load((toy / f"markers/rank-{r}-of-2.json").read_text()) for r in (0, 1)]
    assert [r["rank"] for r in ranks] == [0, 1] and [r["local_rank"] for r in ranks] == [0, 1]
    assert ranks[0]["job"] == ranks[1]["job"] and ranks[0]["cuda_visible_devices"] is not None

    code, out = run(toy_cmd(toy, settings, "-n"), toy)
    assert code == 0 and "Nothing to be done" in out, out[-3000:]


def test_cancelled_and_timed_out_jobs_are_retried(toy):
    """scancel of a running encode job, and training killed by its 1-minute
    time limit: both are resubmitted (retries in the profile); the retry of
    training gets the same time limit again (it resumes: a longer one could exceed
    the partition's) and resumes from its checkpoint."""
    settings = {
        "shards": 1,
        "train_needs_encode": False,  # both faults at once: one wait, not two
        "training": {"world_size": 1},  # one GPU, so encoding runs beside it
        "sleep": {"prepare": 1, "encode": 120},
        "train_steps": 40,
        "step_seconds": 3,  # 120 s of work on the first attempt: past 1 minute
        "slurm": {"kinds": {"train_lora": {"runtime": 1}}},
    }
    log = toy / "head.log"
    head = start(toy_cmd(toy, settings), toy, log)
    wait_for(lambda: starts(toy, "encode-0"), 120, "encode running", head, log)
    job_id = starts(toy, "encode-0")[0].split()[0].removeprefix("job=")
    subprocess.run(["scancel", job_id], check=True)
    try:
        head.wait(timeout=500)
    finally:
        if head.poll() is None:
            head.kill()
    out = log.read_text()
    assert head.returncode == 0, out[-4000:]
    assert (toy / "out/report.txt").is_file()

    assert f"SLURM-job '{job_id}' failed, SLURM status is: 'CANCELLED'" in out
    assert len(starts(toy, "encode-0")) == 2

    train = starts(toy, "train")
    assert len(train) == 2, train
    timed_out = train[0].split()[0].removeprefix("job=")
    assert f"SLURM-job '{timed_out}' failed, SLURM status is: 'TIMEOUT'" in out
    assert slurm_job(timed_out).get("JobState") == "TIMEOUT"
    assert "runtime=1" in train[0] and "runtime=1" in train[1]  # resumable: the same time again
    resumed = [int(x) for x in (toy / "markers/train.resumes").read_text().split()]
    assert resumed[0] == 0 and 0 < resumed[1] < 40, resumed
    # SIGTERM before the kill: the loop checkpointed the step it was at (not only every
    # 10th), and the retry resumed exactly there: no step lost to the time limit.
    preempted = [int(x) for x in (toy / "markers/train.preempted").read_text().split()]
    assert preempted == [resumed[1]], (preempted, resumed)
    assert "resumed at" in (toy / "out/model.txt").read_text()
    assert_ran_under_slurm(out.split("SLURM-job")[-1], ("report",))


def test_sbatch_refusal_is_a_clear_error_and_loses_nothing(toy):
    bad = {"slurm": {"partitions": {"gpu": "no-such-partition"}}}
    code, out = run(toy_cmd(toy, bad), toy)
    assert code != 0
    assert "no-such-partition" in out or "Invalid partition name" in out, out[-3000:]
    assert "encode" in out
    assert (toy / "out/data.txt").is_file(), "the finished job's output was lost"
    assert len(starts(toy, "prepare")) == 1
    # With the right partition, the finished job is not redone.
    code, out = run(toy_cmd(toy, None, "-n"), toy)
    assert code == 0, out
    assert "rule encode:" in out and "rule prepare:" not in out, out[-3000:]


def test_slurm_up_is_idempotent_and_fast():
    require_cluster()
    proc = subprocess.run([str(REPO / ".ci/slurm-up")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "already up" in proc.stderr
    # The fake GPUs are schedulable GRES; more than the node has is refused by sbatch.
    gres = subprocess.run(["sinfo", "-h", "-N", "-o", "%G"], capture_output=True, text=True).stdout
    assert "gpu:fake:2" in gres
    refused = subprocess.run(["sbatch", "-p", "gpu", "--gres=gpu:3", "--wrap", "true"], capture_output=True, text=True)
    assert refused.returncode != 0 and "configuration is not available" in refused.stderr
