from llm_retrieval.bm25 import build_index
from llm_retrieval.joblog import job_log

with job_log(snakemake.log[0]) as log:
    count = build_index(snakemake.input.corpus, snakemake.output[0], snakemake.params.bm25, snakemake.params.use_title)
    log.info("indexed %d documents", count)
