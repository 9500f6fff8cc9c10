from pathlib import Path

from llm_retrieval.joblog import job_log
from llm_retrieval.report.figures import draw_all
from llm_retrieval.report.tables import read_table

with job_log(snakemake.log[0]) as log:
    written = draw_all(read_table(snakemake.input[0]), Path(snakemake.output[0]).parent)
    log.info("wrote %d figures", len(written))
