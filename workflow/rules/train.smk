# Supervised setting: training groups (Tevatron format) -> LoRA retriever per backbone,
# trained with DeepSpeed ZeRO-3; checkpoints outside the declared outputs make it resumable.


rule training_groups:
    input:
        unpack(training_group_inputs),
    output:
        f"{R}/train/groups.parquet",
    log:
        f"{R}/logs/training_groups.log",
    benchmark:
        f"{R}/benchmarks/training_groups.tsv"
    conda:
        ENV
    threads: rule_threads("training_groups")
    resources:
        **rule_resources("training_groups"),
    params:
        source=config.get("training", {}).get("data"),
        bm25=config["bm25"],
        work_dir=f"{R}/downloads/training",
    script:
        "../scripts/training_groups.py"


rule train_lora:
    input:
        backbone=backbone_record,
        groups=f"{R}/train/groups.parquet",
        deepspeed=config.get("training", {}).get("deepspeed_config", []),
    output:
        **snapshot_outputs(),
        adapter=directory(f"{R}/train/{{backbone}}/adapter"),
        report=f"{R}/train/{{backbone}}/training.json",
    log:
        f"{R}/logs/train_lora/{{backbone}}.log",
    benchmark:
        f"{R}/benchmarks/train_lora/{{backbone}}.tsv"
    conda:
        ENV
    threads: rule_threads("train_lora")
    resources:
        **rule_resources("train_lora"),
    params:
        # The training section, with the backbone's own overrides (backbones.<b>.training, e.g. max_steps).
        training=lambda wc: json.dumps(axes.training_for(config, wc.backbone)),
        checkpoints=lambda wc: f"{R}/checkpoints/{wc.backbone}",
        # One rank per GPU; on Slurm, srun starts them on every node of the allocation.
        launcher=rank_launcher(),
        # The interpreter running this job, as for the script: rules (also when no venv is active).
        python=sys.executable,
        script=f"{workflow.basedir}/workflow/scripts/train_lora.py",
        # The learning curve: adapters exported at settings.supervised.axes.steps.
        snapshots=lambda wc, output: " ".join(
            f"--snapshot {name[len('step_'):]}={path}" for name, path in output.items() if name.startswith("step_")
        ),
    shell:
        "{params.launcher} {params.python} {params.script} --backbone {input.backbone} --groups {input.groups}"
        " --training {params.training:q} --deepspeed-config {input.deepspeed}"
        " --adapter {output.adapter} --report {output.report} --checkpoints {params.checkpoints} --log {log}"
        " {params.snapshots}"
