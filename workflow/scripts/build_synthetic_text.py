from llm_retrieval.data.demo import build_synthetic_beir
from llm_retrieval.joblog import job_log

with job_log(snakemake.log[0]) as log:
    log.info("synthetic BEIR-layout dataset: %s", build_synthetic_beir(snakemake.output[0], seed=snakemake.params.seed))
