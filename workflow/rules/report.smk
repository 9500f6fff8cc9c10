# The paper's comparison tables (Markdown, CSV, HTML, JSON), published numbers side by side,
# significance against Base in every cell, and the reproduction fidelity of each table; the cost
# and summary pages; the registry of what `snakemake --report` shows.


rule comparison_table:
    input:
        get_table_metrics,
    output:
        md=layout.table("{table}", "md"),
        csv=layout.table("{table}", "csv"),
        html=layout.table("{table}", "html"),
        json=layout.table("{table}", "json"),
        fidelity_md=layout.table("{table}", "fidelity.md"),
        fidelity_json=layout.table("{table}", "fidelity.json"),
        fidelity_html=layout.table("{table}", "fidelity.html"),
    log:
        layout.log("comparison_table/{table}"),
    benchmark:
        layout.benchmark("comparison_table/{table}")
    conda:
        ENV
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    params:
        table=lambda wc: wc.table,
    script:
        "../scripts/comparison_table.py"


rule report_figures:
    input:
        layout.table("{table}", "json"),
    output:
        table_figures("{table}"),
    log:
        layout.log("report_figures/{table}"),
    benchmark:
        layout.benchmark("report_figures/{table}")
    conda:
        ENV
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    script:
        "../scripts/report_figures.py"


rule cost_table:
    input:
        # Every job but this one and report_summary is upstream, so the page counts the same jobs each run.
        tables=all_tables(),
        metrics=all_metrics(),
        figures=[f for t in study_tables() for f in table_figures(t)],
        axis_tables=all_axis_tables(),
        paper_config=config["report"]["projected_study"],
        # What the projection's encode plan reads (llm_retrieval.cost_estimate, corpus_sizes.py).
        sizes="resources/collection_sizes.tsv",
        token_counts="resources/qwen_token_counts.tsv",
    output:
        md=layout.report_page("cost.md"),
        csv=layout.report_page("cost.csv"),
        html=layout.report_page("cost.html"),
        json=layout.report_page("cost.json"),
    log:
        layout.log("cost_table/cost"),
    benchmark:
        layout.benchmark("cost_table/cost")
    conda:
        ENV
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    params:
        benchmarks=layout.benchmarks_dir(),
    script:
        "../scripts/cost_table.py"


rule report_summary:
    input:
        tables=[layout.table(name, "json") for name in study_tables()],
        fidelity=[layout.table(name, "fidelity.json") for name in study_tables()],
        cost=layout.report_page("cost.json"),
        backbones=[layout.backbone_record(b) for b in study.used_backbones()],
        template="workflow/report/workflow.rst",
    output:
        md=layout.report_page("summary.md"),
        html=layout.report_page("summary.html"),
        fidelity=layout.report_page("fidelity.html"),
        front_page=layout.report_page("workflow.rst"),
        provenance=layout.report_page("provenance.html"),
    log:
        layout.log("report_summary/summary"),
    benchmark:
        layout.benchmark("report_summary/summary")
    conda:
        ENV
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    params:
        pins=pin_files(),
    script:
        "../scripts/report_summary.py"
