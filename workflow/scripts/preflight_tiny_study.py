from pathlib import Path

from llm_retrieval.joblog import job_log
from llm_retrieval.preflight.jobs import tiny_study_job

with job_log(snakemake.log[0]):
    tiny_study_job(snakemake.config, Path(snakemake.params.tiny), Path(snakemake.output.part))
