from pathlib import Path

from llm_retrieval.data.training_sources import GroupsRequest, prepare_groups
from llm_retrieval.joblog import job_log

with job_log(snakemake.log[0]) as log:
    request = GroupsRequest(
        snakemake.params.source,
        Path(snakemake.output[0]),
        Path(snakemake.params.work_dir),
        {name: path for name, path in snakemake.input.items()},
        snakemake.params.bm25,
    )
    log.info("training groups of task %s: %s", snakemake.wildcards.task, prepare_groups(request))
