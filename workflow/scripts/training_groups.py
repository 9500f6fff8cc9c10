from pathlib import Path

from llm_retrieval.data.tevatron import prepare_training_groups
from llm_retrieval.joblog import job_log
from llm_retrieval.train.mine import mine_bm25_groups

with job_log(snakemake.log[0]) as log:
    source = snakemake.params.source
    if source["type"] == "bm25_mined":
        count = mine_bm25_groups(Path(snakemake.input.corpus).parent, snakemake.input.index, source["query_set"],
                                 snakemake.output[0], source["depth"], snakemake.params.bm25)
        log.info("mined %d training groups with BM25", count)
    else:
        log.info("training groups: %s",
                 prepare_training_groups(source, Path(snakemake.output[0]), Path(snakemake.params.work_dir)))
