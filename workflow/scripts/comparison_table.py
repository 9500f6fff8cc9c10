from functools import partial
from pathlib import Path

from llm_retrieval.joblog import job_log
from llm_retrieval.report import write_table
from llm_retrieval.study import Study, metrics_path

with job_log(snakemake.log[0]) as log:
    root = str(Path(snakemake.output.md).parent.parent)  # results/
    write_table(Study(snakemake.config), snakemake.params.table, partial(metrics_path, root=root),
                snakemake.output.md, snakemake.output.csv)
    log.info("wrote %s", snakemake.output.md)
