# Backbones: a pinned hub snapshot (fetched where the internet is reachable), or a
# tiny random-weight model with the real architecture built offline for the demo.


rule resolve_backbone:
    output:
        record=f"{R}/models/{{backbone}}/backbone.json",
    log:
        f"{R}/logs/resolve_backbone/{{backbone}}.log",
    benchmark:
        f"{R}/benchmarks/resolve_backbone/{{backbone}}.tsv"
    conda:
        ENV
    threads: rule_threads("resolve_backbone")
    resources:
        **rule_resources("resolve_backbone"),
    params:
        spec=lambda wc: study.backbone(wc.backbone),
        model_dir=lambda wc: f"{R}/models/{wc.backbone}/model",
    script:
        "../scripts/resolve_backbone.py"
