"""The preflight's checks, each on its own (no cluster): the sbatch line it builds is the Slurm
executor plugin's, a partition limit below a request is a ✗ naming the setting, a job without a GPU
fails (or, on a CPU cluster, is skipped) with the reason, the hub checks and the report's lines."""

import json

import pytest

from llm_retrieval.cluster import rule_resources, rule_threads
from llm_retrieval.preflight import FAILED, OK, SKIPPED, Check, guarded, hub, probe, requests
from llm_retrieval.preflight.report import read_part, write_part, write_report

PARTITIONS = (
    "PartitionName=cpu Default=YES MaxNodes=UNLIMITED MaxTime=2-00:00:00 MaxMemPerNode=UNLIMITED State=UP\n"
    "PartitionName=gpu Default=NO MaxNodes=1 MaxTime=48:00:00 MaxMemPerNode=768000 State=UP\n"
)


class FakeScheduler:
    """Answers like sbatch/scontrol; records every line tried."""

    def __init__(self, refuse=""):
        self.tried, self.refuse = [], refuse

    def partitions(self):
        return PARTITIONS

    def test_only(self, line):
        self.tried.append(line)
        if self.refuse and self.refuse in line:
            return False, "sbatch: error: Batch job submission failed: Requested node configuration is not available"
        return True, "sbatch: Job 1 to start at now"


def entry(rule, kind, config, attempt=1, wildcards=None):
    """A request as expand_rules makes it, from the resources the rules use (cluster.rule_resources)."""
    res = {k: (v(None, attempt) if callable(v) else v) for k, v in rule_resources(config, kind).items()}
    return {
        "rule": rule,
        "attempt": attempt,
        "wildcards": wildcards or {},
        "threads": rule_threads(config, kind),
        "resources": res,
    }


STUDY = {
    "slurm": {"account": "lab", "partitions": {"cpu": "cpu", "gpu": "gpu"}, "gpu_model": "h100"},
    "training": {"world_size": 8},
}


def test_minutes_reads_every_slurm_time_format():
    assert requests.minutes("2-00:00:00") == 2880
    assert requests.minutes("48:00:00") == 2880
    assert requests.minutes("30") == 30
    assert requests.minutes("25:30") == 25.5
    assert requests.minutes("UNLIMITED") is None


def test_the_sbatch_line_is_the_plugins_for_one_gpu_and_for_eight_ranks():
    encode = requests.sbatch_line(entry("encode_corpus_shard", "encode_corpus_shard", STUDY), None, True, "/w")
    assert " -A lab" in encode and " -p gpu" in encode and "--gpus=h100:1" in encode
    assert "--cpus-per-gpu=8" in encode and "--requeue" in encode and "-D /w" in encode
    train = requests.sbatch_line(entry("train_lora", "train_lora", STUDY), None, False, "/w")
    assert "--ntasks-per-node=8" in train and "--gres=gpu:h100:8" in train and "--cpus-per-task=8" in train
    assert "--signal=USR1@600" in train and "--gpus=" not in train


def test_a_request_over_the_partitions_limits_is_a_failed_check_naming_the_setting():
    config = {
        **STUDY,
        "slurm": {
            **STUDY["slurm"],
            "max_runtime": 5000,
            "max_mem_mb": 2_000_000,
            "kinds": {"train_lora": {"runtime": 4000}},
        },
    }
    entries = [entry("train_lora", "train_lora", config, attempt=a) for a in (1, 2)]
    scheduler = FakeScheduler()
    checks = requests.check_requests(entries, False, "/w", scheduler=scheduler)
    assert [c.status for c in checks] == [FAILED, FAILED]
    assert "partition gpu allows 2880 min (MaxTime): set slurm.max_runtime: 2880" in checks[0].advice
    assert "set slurm.max_mem_mb: 768000" in checks[1].advice
    assert scheduler.tried == []  # nothing is worth asking sbatch while a limit is already exceeded


def test_what_sbatch_refuses_is_a_failed_check_with_its_message_and_each_line_is_asked_once():
    entries = [
        entry("encode_corpus_shard", "encode_corpus_shard", STUDY, wildcards={"backbone": b}) for b in ("base", "coder")
    ] + [entry("bm25_index", "bm25", STUDY)]
    scheduler = FakeScheduler(refuse="--gpus=h100:1")
    checks = requests.check_requests(entries, False, "/w", scheduler=scheduler)
    assert [c.status for c in checks] == [FAILED, OK]
    assert "Requested node configuration is not available" in checks[0].detail
    assert len(scheduler.tried) == 2  # the two backbones' identical lines: asked once


def test_a_local_run_skips_the_scheduler_check_and_says_how_to_run_it():
    (check,) = requests.check_requests([], False, "/w", local_run=True)
    assert check.status == SKIPPED and "snakemake --profile slurm preflight" in check.advice


def test_a_gpu_job_without_gpu_fails_with_advice_or_on_a_cpu_cluster_is_skipped(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    config = {"encoding": {"dtype": "bfloat16"}, "search": {"backend": "auto"}, "slurm": {}}
    expected = {c.name: c for c in probe.probe("search", config, {}, expect_gpu=True)}
    assert expected["search: GPUs"].status == FAILED
    assert "slurm.partitions.gpu" in expected["search: GPUs"].advice
    assert expected["search: faiss and search backend"].status == FAILED  # a GPU kind would search on the CPU
    cpu = {c.name: c for c in probe.probe("search", config, {}, expect_gpu=False)}
    assert cpu["search: GPUs"].status == SKIPPED and "preflight.expect_gpu is false" in cpu["search: GPUs"].advice


def test_the_plan_needs_msmarco_scale_search_memory_and_a_training_estimate():
    config = {
        "backbones": {"base": {"hub_id": "Qwen/Qwen2.5-7B", "architecture": "qwen2"}},
        "collections": {"msmarco": {"size_estimate": {"documents": 8841823, "mean_tokens": 80}}},
        "settings": {"supervised": {"backbones": ["base"], "collections": ["msmarco"]}},
        "encoding": {"batch_tokens": 65536},
        "training": {
            "world_size": 8,
            "zero_stage": 3,
            "gradient_checkpointing": "auto",
            "per_device_batch": 1,
            "group_size": 16,
            "max_length": {"query": 32, "passage": 156},
            "lora": {"rank": 32, "dropout": 0.1, "target_modules": ["q_proj", "v_proj"]},
        },
    }
    needs = probe.plan_needs(config)
    assert needs["search"]["rows"] == 8841823 and needs["search"]["dim"] == 3584
    assert 14 * 2**30 < needs["encode_corpus_shard"]["bytes"] < 40 * 2**30
    assert "ZeRO-3, world 8" in needs["train_lora"]["what"] and needs["train_lora"]["bytes"] > 2**30


def test_gated_models_need_a_token_and_strict_pins_a_complete_lock():
    config = {
        "backbones": {"llama": {"hub_id": "meta-llama/Llama-2-7b-hf"}, "qwen": {"hub_id": "Qwen/Qwen1.5-7B"}},
        "settings": {"supervised": {"backbones": ["llama", "qwen"]}},
    }
    assert hub.gated_models(config) == ["meta-llama/Llama-2-7b-hf"]
    missing = hub.token_check(hub.gated_models(config), None)
    assert missing.status == FAILED and "HF_TOKEN" in missing.advice
    assert hub.token_check(hub.gated_models(config), "hf_x").status == OK
    unpinned = hub.pin_check(3, ["Qwen/Qwen1.5-7B@main"], True, "config/pins.lock.yaml", ["config/luo2024.yaml"])
    assert (
        unpinned.status == FAILED and "python -m llm_retrieval.pins --configfile config/luo2024.yaml" in unpinned.advice
    )
    assert hub.pin_check(3, ["Qwen/Qwen1.5-7B@main"], False, "lock", []).status == SKIPPED


def test_a_crashing_check_is_reported_not_raised():
    def boom():
        raise RuntimeError("CUDA error: no kernel image is available")

    (check,) = guarded("search: environment", boom)
    assert check.status == FAILED and "no kernel image" in check.detail


def test_the_report_has_one_line_per_check_grouped_by_job_and_the_shared_file_system(tmp_path):
    head, job = tmp_path / "head.json", tmp_path / "job.json"
    write_part(head, "hub", [Check("hub: token", OK, "no gated model")])
    write_part(job, "job: search", [Check("search: GPUs", FAILED, "none", "check slurm.partitions.gpu")])
    assert read_part(job)["checks"][0].advice == "check slurm.partitions.gpu"
    counts = write_report([str(head), str(job)], [str(job)], tmp_path / "r.md", tmp_path / "r.json")
    text = (tmp_path / "r.md").read_text()
    assert "- ✗ search: GPUs: none — check slurm.partitions.gpu" in text and "## job: search" in text
    assert "- ✔ shared file system: 1 files written by compute jobs" in text
    assert counts == {"ok": 2, "failed": 1, "skipped": 0}
    assert json.loads((tmp_path / "r.json").read_text())["counts"] == counts


@pytest.mark.gpu
def test_on_a_gpu_the_probe_sees_it_and_measures_free_memory():
    import torch

    if not torch.cuda.is_available():
        pytest.skip("no CUDA")
    config = {"encoding": {"dtype": "bfloat16"}, "search": {"backend": "auto"}, "slurm": {}}
    needs = {"search": {"rows": 1000, "dim": 64, "what": "tiny"}}
    checks = {c.name: c for c in probe.probe("search", config, needs, expect_gpu=True)}
    assert checks["search: GPUs"].status == OK
    assert checks["search: free GPU memory vs the plan"].status == OK


def test_the_drills_sigterm_goes_through_the_training_handler_on_rank_0_only(monkeypatch):
    from llm_retrieval.train import preemption

    monkeypatch.setenv(preemption.SIGTERM_ENV, "1")
    preemption.install()
    try:
        preemption.drill_signal(1, rank=1)
        preemption.drill_signal(2, rank=0)
        assert not preemption.stop_requested()
        preemption.drill_signal(1, rank=0)
        assert preemption.stop_requested()
    finally:
        import signal

        for sig in preemption.SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        preemption._requested.clear()
