import json
from pathlib import Path

from llm_retrieval.atomic import write_text
from llm_retrieval.joblog import job_log
from llm_retrieval.report import fidelity, summary
from llm_retrieval.report.html import markdown_to_html, page
from llm_retrieval.report.tables import read_table

with job_log(snakemake.log[0]) as log:
    out, inp = snakemake.output, snakemake.input
    tables = [read_table(p) for p in inp.tables]
    fidelities = [json.loads(Path(p).read_text(encoding="utf-8")) for p in inp.fidelity]
    costs = json.loads(Path(inp.cost).read_text(encoding="utf-8"))
    text = summary.opening(tables, fidelities, summary.cost_sentence(costs))
    write_text(out.md, "# Summary\n\n" + text + "\n")
    write_text(out.html, page("Summary", markdown_to_html("# Summary\n\n" + text)))
    fidelity_md = "\n".join(fidelity.to_markdown(r) for r in fidelities)
    write_text(out.fidelity, page("Reproduction fidelity", markdown_to_html(fidelity_md)))
    template = Path(inp.template).read_text(encoding="utf-8")
    write_text(out.front_page, summary.front_page(template, text, tables, summary.main_tables(snakemake.config)))
    write_text(
        out.provenance,
        page(
            "Provenance", markdown_to_html(summary.provenance(snakemake.config, snakemake.params.pins, inp.backbones))
        ),
    )
    log.info("summary: %s", text)
