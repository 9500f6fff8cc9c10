from llm_retrieval.bm25 import bm25_run
from llm_retrieval.data.canonical import read_queries
from llm_retrieval.joblog import job_log

with job_log(snakemake.log[0]) as log:
    queries = read_queries(snakemake.input.queries, snakemake.wildcards.query_set)
    count = bm25_run(
        snakemake.input.index,
        snakemake.input.corpus,
        queries,
        snakemake.params.top_k,
        snakemake.params.drop_self_hits,
        snakemake.output[0],
        snakemake.params.bm25,
    )
    log.info("searched %d queries", count)
