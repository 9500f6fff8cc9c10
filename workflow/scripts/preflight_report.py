import sys
from pathlib import Path

from llm_retrieval.joblog import job_log
from llm_retrieval.preflight.report import write_report

with job_log(snakemake.log[0]) as log:
    compute = list(snakemake.input.compute)
    counts = write_report([*snakemake.input.head, *compute], compute, snakemake.output.md, snakemake.output.json)
    log.info("preflight: %s", counts)
    print(Path(snakemake.output.md).read_text(encoding="utf-8"), file=sys.stderr)
