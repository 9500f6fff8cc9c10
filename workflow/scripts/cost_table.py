import json

from llm_retrieval import cost_estimate
from llm_retrieval.atomic import write_text
from llm_retrieval.joblog import job_log
from llm_retrieval.report import cost
from llm_retrieval.report.html import markdown_to_html, page

with job_log(snakemake.log[0]) as log:
    out = snakemake.output
    jobs = cost.measured(snakemake.config, snakemake.params.benchmarks)
    projected = cost_estimate.config_projection(snakemake.input.paper_config)  # the estimate the docs print
    markdown = cost.to_markdown(jobs, projected, snakemake.input.paper_config)
    write_text(out.csv, cost.write_csv(jobs, projected.rows))
    write_text(out.md, markdown)
    write_text(out.html, page("Cost", markdown_to_html(markdown)))
    write_text(
        out.json,
        json.dumps(
            {
                "measured": jobs,
                "by_rule": cost.summarise(jobs, "rule"),
                "by_backbone": cost.summarise(jobs, "backbone"),
                "projected": projected.rows,
                "projection_assumptions": list(projected.assumptions),
            },
            indent=1,
        ),
    )
    log.info(
        "%d benchmark files, %.4f GPU-h requested on the cluster, %.4f GPU-h used, %.4f CPU-h",
        len(jobs),
        sum(j["gpu_h_requested"] for j in jobs),
        sum(j["gpu_h_used"] for j in jobs),
        sum(j["cpu_h"] for j in jobs),
    )
