from llm_retrieval.atomic import write_json
from llm_retrieval.data.canonical import read_qrels
from llm_retrieval.joblog import job_log
from llm_retrieval.metrics import evaluate
from llm_retrieval.runs import read_run

with job_log(snakemake.log[0]) as log:
    qrels = read_qrels(snakemake.input.qrels, snakemake.wildcards.query_set)
    result = evaluate(read_run(snakemake.params.run_file), qrels, snakemake.params.relevance_level)
    result.update({k: snakemake.wildcards[k] for k in ("run_setting", "retriever", "collection", "query_set")})
    write_json(snakemake.output[0], result)
    log.info("aggregate: %s", result["aggregate"])
