# Backbones: a pinned hub snapshot (fetched where the internet is reachable), or a
# tiny random-weight model with the real architecture built offline for the demo.


rule resolve_backbone:
    output:
        record=layout.backbone_record("{backbone}"),
    log:
        layout.log("resolve_backbone/{backbone}"),
    benchmark:
        layout.benchmark("resolve_backbone/{backbone}")
    conda:
        ENV
    threads: rule_threads("resolve_backbone")
    resources:
        **rule_resources("resolve_backbone"),
    params:
        spec=lambda wc: study.backbone(wc.backbone),
        model_dir=lambda wc: layout.model_dir(wc.backbone),
    script:
        "../scripts/resolve_backbone.py"
