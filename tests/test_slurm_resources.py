"""llm_retrieval.cluster (behind workflow/rules/resources.smk): what each kind of job asks Slurm for.

No cluster needed.
"""

import re
from functools import partial
from pathlib import Path

import pytest
import yaml

from llm_retrieval import cluster

REPO = Path(__file__).resolve().parents[1]


def load(config):
    """The functions the rules call, bound to ``config`` as resources.smk binds them."""
    namespace = {
        name: partial(getattr(cluster, name), config)
        for name in ("rule_threads", "rule_resources", "rank_launcher", "train_layout", "slurm_settings")
    }
    namespace["SLURM_DEFAULTS"] = cluster.SLURM_DEFAULTS
    namespace["slurm_settings"]()  # unknown keys are errors as soon as the config is read
    return namespace


def evaluate(resources, attempt=1):
    """Resolve the callables the way Snakemake does (wildcards, attempt)."""
    return {k: (v(None, attempt) if callable(v) else v) for k, v in resources.items()}


CLUSTER = {
    "account": "proj42",
    "partitions": {"cpu": "cpu-long", "gpu": "gpu-h100"},
    "gpu_model": "h100",
    "gpus_per_node": 8,
    "cpus_per_gpu": 12,
    "mem_mb_per_gpu": 100000,
}


def test_cpu_kinds_stay_on_the_cpu_partition():
    ns = load({"slurm": CLUSTER})
    for kind in ("data", "bm25", "resolve_backbone", "evaluate", "report", "training_groups"):
        res = evaluate(ns["rule_resources"](kind))
        assert res["slurm_partition"] == "cpu-long", kind
        assert res["slurm_account"] == "proj42"
        assert not {"gpu", "gres", "gpu_model", "cpus_per_gpu", "nodes"} & set(res), kind
        assert ns["rule_threads"](kind) >= 1


def test_encoding_takes_one_gpu_of_the_configured_model():
    ns = load({"slurm": CLUSTER})
    for kind in ("encode_queries_and_first_shard", "encode_corpus_shard"):
        res = evaluate(ns["rule_resources"](kind))
        assert res["slurm_partition"] == "gpu-h100"
        assert (res["gpu"], res["gpu_model"], res["cpus_per_gpu"]) == (1, "h100", 12)
        # An explicit cpus_per_task would override cpus_per_gpu in the plugin.
        assert "cpus_per_task" not in res
        assert res["mem_mb"] == 100000
        assert ns["rule_threads"](kind) == 12


def test_training_takes_whole_nodes_one_rank_per_gpu():
    ns = load({"slurm": CLUSTER, "training": {"world_size": 16}})
    res = evaluate(ns["rule_resources"]("train_lora"))
    assert (res["nodes"], res["tasks_per_node"], res["mpi"]) == (2, 8, "srun")
    assert res["gres"] == "gpu:h100:8"  # per node
    assert res["cpus_per_task"] == 12  # per rank
    assert res["mem_mb"] == 8 * 100000  # per node
    launch = ns["rank_launcher"]()
    assert launch.startswith("srun ") and "--ntasks=16" in launch and "--ntasks-per-node=8" in launch
    assert "SUBMITIT_EXECUTOR=slurm" in launch


def test_single_rank_training_is_an_ordinary_gpu_job():
    ns = load({"slurm": CLUSTER, "training": {"world_size": 1}})
    res = evaluate(ns["rule_resources"]("train_lora"))
    assert res["gpu"] == 1 and "mpi" not in res and "nodes" not in res
    assert ns["rank_launcher"]() == ""


def test_training_world_size_must_fill_whole_nodes():
    ns = load({"slurm": CLUSTER, "training": {"world_size": 12}})
    with pytest.raises(ValueError, match="training.world_size=12"):
        ns["rule_resources"]("train_lora")


def test_search_is_a_gpu_job_whose_gpu_count_the_user_sets():
    ns = load({"slurm": {**CLUSTER, "kinds": {"search": {"gpus": 2}}}})
    res = evaluate(ns["rule_resources"]("search"))
    assert res["slurm_partition"] == "gpu-h100"
    assert (res["gpu"], res["gpu_model"], res["mem_mb"]) == (2, "h100", 200000)
    assert ns["rule_threads"]("search") == 24


def test_runtime_and_memory_grow_with_the_attempt_within_caps():
    ns = load({"slurm": {"kinds": {"bm25": {"runtime": 100, "mem_mb": 1000}}, "max_runtime": 300}})
    first, second, third = (evaluate(ns["rule_resources"]("bm25"), a) for a in (1, 2, 3))
    assert (first["runtime"], second["runtime"], third["runtime"]) == (100, 200, 300)
    assert first["mem_mb"] < second["mem_mb"] < third["mem_mb"]


def test_defaults_name_no_partition_or_account():
    ns = load({})
    res = evaluate(ns["rule_resources"]("encode_queries_and_first_shard"))
    assert "slurm_partition" not in res and "slurm_account" not in res and "gpu_model" not in res


def test_unknown_settings_are_refused_with_their_config_key():
    with pytest.raises(ValueError, match="slurm.partiton"):
        load({"slurm": {"partiton": {"cpu": "x"}}})["rule_resources"]("data")
    with pytest.raises(ValueError, match="slurm.kinds.encode"):
        load({"slurm": {"kinds": {"encode": {"runtime": 1}}}})["rule_resources"]("data")


def test_an_old_kind_name_in_slurm_kinds_is_refused_with_its_new_name():
    for old, new in (
        ("build_backbone", "resolve_backbone"),
        ("mine_negatives", "training_groups"),
        ("train", "train_lora"),
    ):
        with pytest.raises(cluster.RenamedKindError, match=f"slurm.kinds.{old}.*now called '{new}'"):
            load({"slurm": {"kinds": {old: {"runtime": 1}}}})


def test_every_rule_asks_for_an_existing_kind_named_after_a_rule_or_stage():
    asked = set()
    for smk in (REPO / "workflow/rules").glob("*.smk"):
        asked |= set(re.findall(r'rule_resources\("(\w+)"\)', smk.read_text()))
    assert asked == set(cluster.SLURM_DEFAULTS["kinds"])
    assert not asked & set(cluster.RENAMED_KINDS)


def test_ci_cluster_settings_fit_the_test_cluster():
    cluster = yaml.safe_load((REPO / "profiles/slurm-ci/cluster.yaml").read_text())
    ns = load({**cluster, "training": {"world_size": 2}})
    for kind in ns["SLURM_DEFAULTS"]["kinds"]:
        res = evaluate(ns["rule_resources"](kind), attempt=3)
        assert res["mem_mb"] <= 2000 and res["runtime"] <= 30
        assert ns["rule_threads"](kind) == 1


# --- retries, the partition's limits, the rank launcher, the early warning (issue 23) -----------


def paper_config():
    return yaml.safe_load((REPO / "config/config.yaml").read_text())


def requested(config, kind, attempt):
    """What resources.smk hands Snakemake for one job of ``kind`` (backbone ``base``) at ``attempt``."""
    from types import SimpleNamespace

    from llm_retrieval import model_resources

    res = model_resources.sized_resources(
        config, kind, cluster.rule_resources(config, kind), lambda backbone: REPO / "no-such-record.json"
    )
    wildcards = SimpleNamespace(backbone="base")
    return {k: (v(wildcards, attempt) if callable(v) else v) for k, v in res.items()}


def test_retries_of_every_job_kind_stay_within_a_48_hour_partition_and_one_node_s_memory():
    config = paper_config()
    settings = cluster.slurm_settings(config)
    node_mb = settings["gpus_per_node"] * settings["mem_mb_per_gpu"]
    for kind in cluster.SLURM_DEFAULTS["kinds"]:
        attempts = [requested(config, kind, a) for a in (1, 2, 3)]
        runtimes, mems = [r["runtime"] for r in attempts], [r["mem_mb"] for r in attempts]
        assert max(runtimes) <= 48 * 60 and max(mems) <= node_mb, (kind, runtimes, mems)
        assert mems == sorted(mems), kind  # memory may grow, up to the node
        if kind in cluster.RESUMABLE_KINDS:
            assert runtimes == [runtimes[0]] * 3, (kind, runtimes)  # resumes: the same time again
        else:
            assert runtimes == [min(runtimes[0] * 2**k, 48 * 60) for k in range(3)], (kind, runtimes)


def test_a_preempted_training_retry_asks_for_what_the_first_attempt_got():
    res = [requested(paper_config(), "train_lora", a) for a in (1, 2, 3)]
    assert [r["runtime"] for r in res] == [2880] * 3  # not 96 h / 192 h
    assert [r["mem_mb"] for r in res] == [8 * 96000] * 3  # the node's memory, not 1.15 / 1.7 TB


def test_caps_set_by_the_user_bound_every_attempt_of_a_larger_model_too():
    config = {**paper_config(), "slurm": {"max_runtime": 600, "max_mem_mb": 200000}}
    config["backbones"] = {"base": {"hub_id": "Qwen/Qwen2.5-14B", "architecture": "qwen2"}}
    for kind in cluster.SLURM_DEFAULTS["kinds"]:
        for attempt in (1, 2, 3):
            res = requested(config, kind, attempt)
            assert res["runtime"] <= 600 and res["mem_mb"] <= 200000, (kind, attempt, res)


def test_the_rank_launcher_gives_each_rank_its_cpus_and_every_gpu_of_its_node():
    ns = load({"slurm": CLUSTER, "training": {"world_size": 16}})
    launch = ns["rank_launcher"]().split()
    # srun inherits no --cpus-per-task since Slurm 22.05: without -c the 8 ranks share 8 CPUs.
    assert "--cpus-per-task=12" in launch
    # Each rank picks cuda:LOCAL_RANK (as DeepSpeed does), so each must see its node's GPUs unbound.
    assert "--gres=gpu:h100:8" in launch and "--gpu-bind" not in launch  # no binding: every rank sees the step's GPUs
    assert (
        "--cpus-per-task=1"
        in load({"slurm": {**CLUSTER, "max_threads": 1}, "training": {"world_size": 16}})["rank_launcher"]().split()
    )


class Submitted(dict):
    """A job as the Slurm executor plugin reads it (job.resources.get / .name, job.threads)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


def submitted(config, kind, attempt=1):
    """The sbatch command line snakemake-executor-plugin-slurm would submit for one job of ``kind``."""
    from types import SimpleNamespace

    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.validation import validate_slurm_extra

    job = SimpleNamespace(
        resources=Submitted(requested(config, kind, attempt)), threads=cluster.rule_threads(config, kind)
    )
    validate_slurm_extra(job)  # the plugin refuses options it sets itself
    params = {
        "run_uuid": "job",
        "slurm_logfile": "log",
        "comment_str": "c",
        "account": "",
        "partition": "",
        "workdir": None,
    }
    return get_submit_command(job, params)


def test_multi_rank_training_is_submitted_with_an_early_usr1_warning_that_is_configurable():
    config = paper_config()
    assert "--signal=USR1@600" in submitted(config, "train_lora").split()
    assert "--signal=USR1@600" in submitted(config, "train_lora", attempt=3).split()
    assert "--signal=USR1@1200" in submitted({**config, "slurm": {"preemption_warning_s": 1200}}, "train_lora")
    assert "--signal" not in submitted({**config, "slurm": {"preemption_warning_s": None}}, "train_lora")
    assert "--signal" not in submitted(config, "encode_corpus_shard")


def test_a_gpu_kind_s_own_mem_mb_is_honoured_not_ignored():
    res = evaluate(load({"slurm": {**CLUSTER, "kinds": {"search": {"mem_mb": 256000}}}})["rule_resources"]("search"))
    assert res["mem_mb"] == 256000 and res["gpu"] == 1
