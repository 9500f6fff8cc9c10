from llm_retrieval.backbones import resolve_backbone
from llm_retrieval.joblog import job_log

with job_log(snakemake.log[0]) as log:
    record = resolve_backbone(snakemake.params.spec, snakemake.params.model_dir, snakemake.output.record)
    log.info("backbone %s: %s", snakemake.wildcards.backbone, record)
