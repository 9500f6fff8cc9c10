import json

from llm_retrieval.atomic import write_text
from llm_retrieval.joblog import job_log
from llm_retrieval.report import fidelity
from llm_retrieval.report.html import markdown_to_html, page
from llm_retrieval.report.tables import write_table
from llm_retrieval.study import Study

with job_log(snakemake.log[0]) as log:
    out = snakemake.output
    study = Study(snakemake.config)
    # The rule's input is the metrics file of each of study.table_units(...), in that order
    # (common.smk: get_table_metrics); the table reads those files and no others.
    units = study.table_units(snakemake.params.table)
    if len(units) != len(snakemake.input):
        raise RuntimeError(
            f"{len(snakemake.input)} metrics inputs for {len(units)} runs of table {snakemake.params.table}"
        )
    metrics_of = dict(zip(units, snakemake.input)).__getitem__
    table = write_table(study, snakemake.params.table, metrics_of, out.md, out.csv, out.html, out.json)
    result = fidelity.fidelity(table, study.config["report"]["fidelity_threshold"])
    write_text(out.fidelity_json, json.dumps(result, indent=1))
    markdown = fidelity.to_markdown(result)
    write_text(out.fidelity_md, markdown)
    write_text(out.fidelity_html, page(f"Fidelity: {table.title}", markdown_to_html(markdown)))
    log.info("wrote %s (%d cells compared with the published table)", out.md, result["compared_cells"])
