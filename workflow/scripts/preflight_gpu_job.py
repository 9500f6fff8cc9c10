from pathlib import Path

from llm_retrieval.joblog import job_log
from llm_retrieval.preflight.jobs import gpu_job

with job_log(snakemake.log[0]):
    gpu_job(
        snakemake.params.kind,
        snakemake.config,
        snakemake.params.needs,
        Path(snakemake.params.tiny),
        Path(snakemake.output[0]),
        snakemake.params.get("launcher", ""),
    )
