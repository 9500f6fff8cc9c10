from llm_retrieval.data.demo import build_stdlib_pairs
from llm_retrieval.joblog import job_log

with job_log(snakemake.log[0]) as log:
    log.info("stdlib code-search pairs: %s", build_stdlib_pairs(snakemake.output[0]))
