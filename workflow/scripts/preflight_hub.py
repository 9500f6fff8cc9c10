from llm_retrieval.joblog import job_log
from llm_retrieval.preflight import guarded
from llm_retrieval.preflight.hub import hub_checks
from llm_retrieval.preflight.report import write_part

with job_log(snakemake.log[0]):
    p = snakemake.params
    write_part(
        snakemake.output[0], "hub", guarded("hub", hub_checks, snakemake.config, p.refs, p.unpinned, p.configfiles)
    )
