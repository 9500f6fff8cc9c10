import faiss

from llm_retrieval.embeddings import check_compatible, read_column, read_embeddings
from llm_retrieval.joblog import job_log
from llm_retrieval.search import dense_search

faiss.omp_set_num_threads(snakemake.threads)

with job_log(snakemake.log[0]) as log:
    for shard in snakemake.input.shards:
        check_compatible(snakemake.input.queries, shard)
    ids, vectors = read_embeddings(snakemake.input.queries)
    query_sets = read_column(snakemake.input.queries, "query_set")
    chosen = [i for i, qs in enumerate(query_sets) if qs == snakemake.wildcards.query_set]
    count = dense_search([ids[i] for i in chosen], vectors[chosen], snakemake.input.shards, snakemake.params.top_k,
                         snakemake.params.drop_self_hits, snakemake.output[0],
                         tag=f"{snakemake.wildcards.setting}-{snakemake.wildcards.backbone}")
    log.info("searched %d queries", count)
