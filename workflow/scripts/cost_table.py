import json

import yaml

from llm_retrieval.atomic import write_text
from llm_retrieval.joblog import job_log
from llm_retrieval.report import cost
from llm_retrieval.report.html import markdown_to_html, page

with job_log(snakemake.log[0]) as log:
    out = snakemake.output
    jobs = cost.measured(snakemake.config, snakemake.params.benchmarks)
    with open(snakemake.input.paper_config, encoding="utf-8") as stream:
        paper = yaml.safe_load(stream)
    projected = cost.projection(paper, cost.read_sizes(snakemake.input.sizes))
    markdown = cost.to_markdown(jobs, projected)
    write_text(out.csv, cost.write_csv(jobs, projected))
    write_text(out.md, markdown)
    write_text(out.html, page("Cost", markdown_to_html(markdown)))
    write_text(out.json, json.dumps({"measured": jobs, "by_rule": cost.summarise(jobs, "rule"),
                                     "by_backbone": cost.summarise(jobs, "backbone"), "projected": projected},
                                    indent=1))
    log.info("%d benchmark files, %.4f GPU-h requested on the cluster, %.4f GPU-h used, %.4f CPU-h", len(jobs),
             sum(j["gpu_h_requested"] for j in jobs), sum(j["gpu_h_used"] for j in jobs),
             sum(j["cpu_h"] for j in jobs))
