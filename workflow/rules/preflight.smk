# `snakemake --profile slurm preflight` (or --cores N): check the cluster before the study, in minutes.
# One line per check in results/preflight/report.md (and .json); logic in src/llm_retrieval/preflight/,
# what each check means in docs/slurm.md, "Before the study: preflight".

from llm_retrieval.preflight import drill as preflight_drill
from llm_retrieval.preflight import probe as preflight_probe
from llm_retrieval.preflight import requests as preflight_requests
from llm_retrieval.pins import hub_refs

PREFLIGHT = f"{R}/preflight"
PREFLIGHT_TINY = f"{PREFLIGHT}/tiny"
PREFLIGHT_GPU_PARTS = {
    "encode_queries_and_first_shard": f"{PREFLIGHT}/parts/encode_queries_and_first_shard.json",
    "encode_corpus_shard": f"{PREFLIGHT}/parts/encode_corpus_shard.json",
    "search": f"{PREFLIGHT}/parts/search.json",
    "train_lora": f"{PREFLIGHT}/parts/train_lora.json",
}
PREFLIGHT_HEAD_PARTS = [f"{PREFLIGHT}/parts/requests.json", f"{PREFLIGHT}/parts/hub.json"]


localrules:
    preflight,
    preflight_requests,
    preflight_hub,


def preflight_only(targets):
    """True when every target of this run is a preflight rule or file."""
    return bool(targets) and all(t.startswith("preflight") or f"{PREFLIGHT}/" in t for t in targets)


def get_preflight_requests(wildcards):
    """Every non-local rule's resources at every attempt the profile's retries allow (Snakemake evaluates them)."""
    from snakemake.iocontainers import InputFiles, Wildcards

    study = config["settings"].values()
    values = {
        "backbone": sorted({b for s in study for b in s["backbones"]}),
        "collection": sorted({c for s in study for c in s["collections"]}),
    }
    rules = [r for r in workflow.rules if not workflow.is_local(r)]
    attempts = workflow.execution_settings.retries + 1
    return preflight_requests.expand_rules(rules, lambda d: Wildcards(fromdict=d), InputFiles(), values, attempts)


def preflight_resources(kind):
    """A preflight job of this kind: the kind's resources (training: over 2 ranks), for preflight.runtime minutes."""
    drill = preflight_drill.drill_config(config)
    return {**cluster.rule_resources(drill, kind), "runtime": config["preflight"]["runtime"]}


rule preflight:
    input:
        head=PREFLIGHT_HEAD_PARTS,
        compute=[f"{PREFLIGHT}/parts/tiny_study.json", *PREFLIGHT_GPU_PARTS.values()],
    output:
        md=f"{PREFLIGHT}/report.md",
        json=f"{PREFLIGHT}/report.json",
    log:
        f"{R}/logs/preflight/report.log",
    benchmark:
        f"{R}/benchmarks/preflight/report.tsv"
    conda:
        ENV
    script:
        "../scripts/preflight_report.py"


rule preflight_requests:
    output:
        f"{PREFLIGHT}/parts/requests.json",
    log:
        f"{R}/logs/preflight/requests.log",
    benchmark:
        f"{R}/benchmarks/preflight/requests.tsv"
    conda:
        ENV
    params:
        requests=get_preflight_requests,
        # Read when the job is made: the executor is not known yet while the Snakefile is parsed.
        requeue=lambda wc: bool(getattr(workflow.executor_settings, "requeue", False)),
        workdir=workflow.workdir_init,
        local_run=lambda wc: workflow.local_exec,
    script:
        "../scripts/preflight_requests.py"


rule preflight_hub:
    output:
        f"{PREFLIGHT}/parts/hub.json",
    log:
        f"{R}/logs/preflight/hub.log",
    benchmark:
        f"{R}/benchmarks/preflight/hub.tsv"
    conda:
        ENV
    params:
        refs=len(hub_refs(config)),
        unpinned=[f"{ref.repo}@{ref.revision}" for ref in UNPINNED],
        configfiles=[str(f) for f in workflow.config_settings.configfiles],
    script:
        "../scripts/preflight_hub.py"


rule preflight_tiny_study:
    output:
        part=f"{PREFLIGHT}/parts/tiny_study.json",
        record=f"{PREFLIGHT_TINY}/backbone.json",
    log:
        f"{R}/logs/preflight/tiny_study.log",
    benchmark:
        f"{R}/benchmarks/preflight/tiny_study.tsv"
    conda:
        ENV
    threads: cluster.rule_threads(config, "resolve_backbone")
    resources:
        **preflight_resources("resolve_backbone"),
    params:
        tiny=PREFLIGHT_TINY,
    script:
        "../scripts/preflight_tiny_study.py"


rule preflight_encode_queries:
    input:
        study=f"{PREFLIGHT}/parts/tiny_study.json",
    output:
        PREFLIGHT_GPU_PARTS["encode_queries_and_first_shard"],
    log:
        f"{R}/logs/preflight/encode_queries_and_first_shard.log",
    benchmark:
        f"{R}/benchmarks/preflight/encode_queries_and_first_shard.tsv"
    conda:
        ENV
    threads: cluster.rule_threads(config, "encode_queries_and_first_shard")
    resources:
        **preflight_resources("encode_queries_and_first_shard"),
    params:
        kind="encode_queries_and_first_shard",
        tiny=PREFLIGHT_TINY,
        needs=lambda wc: preflight_probe.plan_needs(config),
    script:
        "../scripts/preflight_gpu_job.py"


rule preflight_encode_shard:
    input:
        study=f"{PREFLIGHT}/parts/tiny_study.json",
    output:
        PREFLIGHT_GPU_PARTS["encode_corpus_shard"],
    log:
        f"{R}/logs/preflight/encode_corpus_shard.log",
    benchmark:
        f"{R}/benchmarks/preflight/encode_corpus_shard.tsv"
    conda:
        ENV
    threads: cluster.rule_threads(config, "encode_corpus_shard")
    resources:
        **preflight_resources("encode_corpus_shard"),
    params:
        kind="encode_corpus_shard",
        tiny=PREFLIGHT_TINY,
        needs=lambda wc: preflight_probe.plan_needs(config),
    script:
        "../scripts/preflight_gpu_job.py"


rule preflight_search:
    input:
        PREFLIGHT_GPU_PARTS["encode_queries_and_first_shard"],
        PREFLIGHT_GPU_PARTS["encode_corpus_shard"],
    output:
        PREFLIGHT_GPU_PARTS["search"],
    log:
        f"{R}/logs/preflight/search.log",
    benchmark:
        f"{R}/benchmarks/preflight/search.tsv"
    conda:
        ENV
    threads: cluster.rule_threads(config, "search")
    resources:
        **preflight_resources("search"),
    params:
        kind="search",
        tiny=PREFLIGHT_TINY,
        needs=lambda wc: preflight_probe.plan_needs(config),
    script:
        "../scripts/preflight_gpu_job.py"


rule preflight_train:
    input:
        study=f"{PREFLIGHT}/parts/tiny_study.json",
    output:
        PREFLIGHT_GPU_PARTS["train_lora"],
    log:
        f"{R}/logs/preflight/train_lora.log",
    benchmark:
        f"{R}/benchmarks/preflight/train_lora.tsv"
    conda:
        ENV
    threads: cluster.rule_threads(preflight_drill.drill_config(config), "train_lora")
    resources:
        **preflight_resources("train_lora"),
    params:
        kind="train_lora",
        tiny=PREFLIGHT_TINY,
        needs=lambda wc: preflight_probe.plan_needs(config),
        launcher=cluster.rank_launcher(preflight_drill.drill_config(config)),
    script:
        "../scripts/preflight_gpu_job.py"
