# `snakemake --profile slurm preflight` (or --cores N): check the cluster before the study, in minutes.
# One line per check in results/preflight/report.md (and .json); logic in src/llm_retrieval/preflight/,
# what each check means in docs/slurm.md, "Before the study: preflight".


localrules:
    preflight,
    preflight_requests,
    preflight_hub,


rule preflight:
    input:
        head=PREFLIGHT_HEAD_PARTS,
        compute=[layout.preflight("parts/tiny_study.json"), *PREFLIGHT_GPU_PARTS.values()],
    output:
        md=layout.preflight("report.md"),
        json=layout.preflight("report.json"),
    log:
        layout.log("preflight/report"),
    benchmark:
        layout.benchmark("preflight/report")
    conda:
        ENV
    script:
        "../scripts/preflight_report.py"


rule preflight_requests:
    output:
        layout.preflight("parts/requests.json"),
    log:
        layout.log("preflight/requests"),
    benchmark:
        layout.benchmark("preflight/requests")
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
        layout.preflight("parts/hub.json"),
    log:
        layout.log("preflight/hub"),
    benchmark:
        layout.benchmark("preflight/hub")
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
        part=layout.preflight("parts/tiny_study.json"),
        record=layout.preflight("tiny/backbone.json"),
    log:
        layout.log("preflight/tiny_study"),
    benchmark:
        layout.benchmark("preflight/tiny_study")
    conda:
        ENV
    threads: cluster.rule_threads(config, "resolve_backbone")
    resources:
        **preflight_resources("resolve_backbone"),
    params:
        tiny=lambda wc, output: os.path.dirname(output.record),  # PREFLIGHT_TINY, from the output (snakemake --lint)
    script:
        "../scripts/preflight_tiny_study.py"


rule preflight_encode_queries:
    input:
        study=layout.preflight("parts/tiny_study.json"),
    output:
        PREFLIGHT_GPU_PARTS["encode_queries_and_first_shard"],
    log:
        layout.log("preflight/encode_queries_and_first_shard"),
    benchmark:
        layout.benchmark("preflight/encode_queries_and_first_shard")
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
        study=layout.preflight("parts/tiny_study.json"),
    output:
        PREFLIGHT_GPU_PARTS["encode_corpus_shard"],
    log:
        layout.log("preflight/encode_corpus_shard"),
    benchmark:
        layout.benchmark("preflight/encode_corpus_shard")
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
        layout.log("preflight/search"),
    benchmark:
        layout.benchmark("preflight/search")
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
        study=layout.preflight("parts/tiny_study.json"),
    output:
        PREFLIGHT_GPU_PARTS["train_lora"],
    log:
        layout.log("preflight/train_lora"),
    benchmark:
        layout.benchmark("preflight/train_lora")
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
