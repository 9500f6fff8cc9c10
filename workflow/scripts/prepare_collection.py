from pathlib import Path

from llm_retrieval.data.sources import prepare_collection
from llm_retrieval.joblog import job_log

with job_log(snakemake.log[0]) as log:
    source = dict(snakemake.params.source, **dict(snakemake.input.items()))
    manifest = prepare_collection(
        source, snakemake.params.query_sets, Path(snakemake.output.manifest).parent, Path(snakemake.params.work_dir)
    )
    log.info("manifest: %s", manifest)
