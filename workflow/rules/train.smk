# Supervised setting: training groups (Tevatron format) -> LoRA retriever per backbone,
# trained with DeepSpeed ZeRO-3; checkpoints outside the declared outputs make it resumable.


def training_group_inputs(wildcards):
    data = config["training"]["data"]
    if data["type"] == "bm25_mined":
        return {"index": f"{R}/bm25/{data['collection']}/index", **collection_files(data["collection"])}
    return {}


rule training_groups:
    input:
        unpack(training_group_inputs),
    output:
        f"{R}/train/groups.parquet",
    params:
        data=config.get("training", {}).get("mine_negatives"),
        bm25=config["bm25"],
        work_dir=f"{R}/downloads/training",
    log:
        f"{R}/logs/training_groups.log",
    benchmark:
        f"{R}/benchmarks/training_groups.tsv"
    threads: rule_threads("mine_negatives")
    resources:
        **rule_resources("mine_negatives"),
    conda:
        ENV
    script:
        "../scripts/training_groups.py"


rule train_lora:
    input:
        backbone=backbone_record,
        groups=f"{R}/train/groups.parquet",
        deepspeed=config.get("training", {}).get("deepspeed_config", []),
    output:
        adapter=directory(f"{R}/train/{{backbone}}/adapter"),
        report=f"{R}/train/{{backbone}}/training.json",
    params:
        training=config.get("training"),
        checkpoints=lambda wc: f"{R}/checkpoints/{wc.backbone}",
    log:
        f"{R}/logs/train_lora/{{backbone}}.log",
    benchmark:
        f"{R}/benchmarks/train_lora/{{backbone}}.tsv"
    threads: rule_threads("train")
    resources:
        **rule_resources("train"),
    conda:
        ENV
    script:
        "../scripts/train_lora.py"
