import json
from functools import partial
from pathlib import Path

from llm_retrieval.atomic import write_text
from llm_retrieval.joblog import job_log
from llm_retrieval.report import fidelity, write_table
from llm_retrieval.report.html import markdown_to_html, page
from llm_retrieval.study import Study, metrics_path

with job_log(snakemake.log[0]) as log:
    out = snakemake.output
    root = str(Path(out.md).parent.parent)  # results/
    study = Study(snakemake.config)
    table = write_table(study, snakemake.params.table, partial(metrics_path, root=root),
                        out.md, out.csv, out.html, out.json)
    result = fidelity.fidelity(table, study.config["report"]["fidelity_threshold"])
    write_text(out.fidelity_json, json.dumps(result, indent=1))
    markdown = fidelity.to_markdown(result)
    write_text(out.fidelity_md, markdown)
    write_text(out.fidelity_html, page(f"Fidelity: {table.title}", markdown_to_html(markdown)))
    log.info("wrote %s (%d cells compared with the published table)", out.md, result["compared_cells"])
