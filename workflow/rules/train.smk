# Supervised setting: training groups (Tevatron format), one file per training task, shared by every
# recipe using it -> one LoRA retriever per (recipe, backbone), trained with DeepSpeed ZeRO-3;
# checkpoints outside the declared outputs make it resumable (docs/recipes.md, docs/training.md).


rule training_groups:
    input:
        unpack(get_training_group_inputs),
    output:
        layout.training_groups("{task}"),
    log:
        layout.log("training_groups/{task}"),
    benchmark:
        layout.benchmark("training_groups/{task}")
    conda:
        ENV
    threads: rule_threads("training_groups")
    resources:
        **rule_resources("training_groups"),
    params:
        source=lambda wc: recipes.task_sources(config)[wc.task],
        bm25=config["bm25"],
        work_dir=layout.downloads("training"),
    script:
        "../scripts/training_groups.py"


rule train_lora:
    input:
        unpack(get_training_inputs),
        deepspeed=config.get("training", {}).get("deepspeed_config", []),
    output:
        **snapshot_outputs(),
        adapter=directory(layout.adapter("{recipe}", "{backbone}")),
        report=layout.training_report("{recipe}", "{backbone}"),
    log:
        layout.log("train_lora/{recipe}/{backbone}"),
    benchmark:
        layout.benchmark("train_lora/{recipe}/{backbone}")
    conda:
        ENV
    threads: rule_threads("train_lora")
    resources:
        **rule_resources("train_lora"),
    params:
        # The recipe's training section, with the backbone's own overrides (backbones.<b>.training, e.g. max_steps).
        training=lambda wc: json.dumps(axes.training_for(config, wc.backbone, wc.recipe)),
        groups=lambda wc: " ".join(f"--groups {task}={path}" for task, path in get_recipe_groups(wc).items()),
        task_options=lambda wc: recipe_task_options(wc.recipe),
        checkpoints=lambda wc: layout.checkpoints(wc.recipe, wc.backbone),
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
        "{params.launcher} {params.python} {params.script} --backbone {input.backbone} {params.groups}"
        " --task-options {params.task_options:q} --training {params.training:q} --deepspeed-config {input.deepspeed}"
        " --adapter {output.adapter} --report {output.report} --checkpoints {params.checkpoints} --log {log}"
        " {params.snapshots}"
