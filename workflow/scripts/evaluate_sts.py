from llm_retrieval.joblog import job_log
from llm_retrieval.sts import evaluate_sts

with job_log(snakemake.log[0]) as log:
    metrics = evaluate_sts(
        snakemake.input.pairs, snakemake.input.sentences, snakemake.wildcards.query_set, snakemake.output[0]
    )
    log.info("aggregate: %s over %d pairs", metrics["aggregate"], metrics["num_pairs"])
