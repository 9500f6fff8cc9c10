from llm_retrieval.joblog import job_log
from llm_retrieval.preflight import guarded
from llm_retrieval.preflight.report import write_part
from llm_retrieval.preflight.requests import check_requests

with job_log(snakemake.log[0]):
    p = snakemake.params
    checks = guarded("job resources", check_requests, p.requests, p.requeue, p.workdir, p.local_run)
    write_part(snakemake.output[0], "job resources at every retry attempt", checks)
