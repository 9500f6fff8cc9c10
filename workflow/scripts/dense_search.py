import faiss

from llm_retrieval.joblog import job_log
from llm_retrieval.search import search_collection

faiss.omp_set_num_threads(snakemake.threads)

with job_log(snakemake.log[0]) as log:
    counts = search_collection(
        snakemake.input.queries,
        snakemake.input.shards,
        snakemake.params.query_sets,
        snakemake.params.top_k,
        snakemake.params.drop_self_hits,
        snakemake.output[0],
        tag=f"{snakemake.wildcards.setting}-{snakemake.wildcards.backbone}",
        backend=snakemake.params.backend,
        log=log,
    )
    log.info("searched %s", counts)
