"""Shared helpers for the tests that run workflows on the local Slurm cluster
(.ci/slurm-up): skip when no cluster answers, run Snakemake through the
profiles, and read what Slurm itself says about the jobs."""

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PROFILES = ["--profile", str(REPO / "profiles/slurm"), "--profile", str(REPO / "profiles/slurm-ci")]
CI_CLUSTER = str(REPO / "profiles/slurm-ci/cluster.yaml")
SUBMITTED = re.compile(r"Job \d+ has been submitted with SLURM jobid (\d+) \(log: (\S+)\)")


def cluster_problem():
    """None when a Slurm node is ready for jobs, else why not."""
    if shutil.which("sinfo") is None:
        return "no Slurm client (sinfo) installed: run .ci/slurm-up"
    try:
        out = subprocess.run(["sinfo", "-h", "-N", "-o", "%t"], capture_output=True, text=True, timeout=20)
    except subprocess.TimeoutExpired:
        return "sinfo timed out: is slurmctld running? (.ci/slurm-up)"
    states = out.stdout.split()
    if out.returncode != 0 or not states:
        last = (out.stderr.strip().splitlines() or [""])[-1][:200]
        return f"no Slurm cluster answers (sinfo: {last!r}): run .ci/slurm-up"
    if not any(s.startswith(("idle", "mix", "alloc", "comp")) for s in states):
        return f"Slurm node not usable (state {states}): run .ci/slurm-up"
    return None


def require_cluster():
    """Skip when no cluster is up; fail instead when REQUIRE_SLURM=1 (CI,
    where .ci/slurm-up ran and a silent skip would hide a broken cluster)."""
    problem = cluster_problem()
    if problem and os.environ.get("REQUIRE_SLURM") == "1":
        pytest.fail(problem)
    if problem:
        pytest.skip(problem)


def job_env():
    """The environment jobs inherit (sbatch --export=ALL): this venv first."""
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    for key in list(env):  # a test run inside a Slurm job must not leak its job
        if key.startswith(("SLURM_", "SBATCH_", "SRUN_")):
            del env[key]
    return env


def snakemake_cmd(*args):
    return [sys.executable, "-m", "snakemake", *PROFILES, *args]


def run(cmd, cwd, timeout=400):
    """Run to the end; returns (returncode, combined output)."""
    proc = subprocess.run(cmd, cwd=cwd, env=job_env(), capture_output=True, text=True, timeout=timeout)
    return proc.returncode, proc.stdout + proc.stderr


def start(cmd, cwd, log: Path):
    """Start in the background, in its own process group, output to log."""
    handle = open(log, "w")  # noqa: SIM115  (the background process writes to it after we return)
    return subprocess.Popen(
        cmd, cwd=cwd, env=job_env(), stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
    )


def kill_head(proc):
    """SIGKILL a head Snakemake process, as a crash or an OOM kill would."""
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)


def wait_for(predicate, timeout, what, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if proc is not None and proc.poll() is not None:
            tail = Path(log).read_text()[-3000:] if log else ""
            raise AssertionError(f"snakemake ended (rc={proc.returncode}) before {what}:\n{tail}")
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def submissions(output):
    """[(slurm job id, slurm log path)] in the order Snakemake submitted them."""
    return SUBMITTED.findall(output)


def slurm_states(job_ids):
    """{job id: state} from squeue (finished jobs stay listed a day: .ci/slurm-up sets MinJobAge)."""
    out = subprocess.run(
        ["squeue", "-h", "--states=all", "-o", "%i|%T", "-j", ",".join(job_ids)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return dict(line.split("|", 1) for line in out.split())


def slurm_job(job_id):
    """scontrol's view of one job as a dict (JobState, TimeLimit, Partition, ...)."""
    out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True).stdout
    return dict(re.findall(r"(\w+)=(\S*)", out))


def assert_ran_under_slurm(output, rules):
    """Every submission's Slurm log exists and Slurm reports the job COMPLETED;
    every rule in rules was submitted at least once."""
    subs = submissions(output)
    assert subs, f"nothing was submitted with sbatch:\n{output[-3000:]}"
    states = slurm_states([j for j, _ in subs])
    for job_id, log in subs:
        assert Path(log).is_file(), f"no Slurm log {log} for job {job_id}"
        assert states.get(job_id) == "COMPLETED", f"Slurm job {job_id}: {states.get(job_id)}"
    seen = {Path(log).parts[Path(log).parts.index("slurm") + 1].removeprefix("rule_") for _, log in subs}
    assert set(rules) <= seen, f"rules never submitted to Slurm: {set(rules) - seen}"
    return subs
