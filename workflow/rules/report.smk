# The paper's comparison tables (Markdown, CSV, HTML, JSON), published numbers side by side,
# significance against Base in every cell, and the reproduction fidelity of each table.


rule comparison_table:
    input:
        table_metrics,
    output:
        md=f"{R}/tables/{{table}}.md",
        csv=f"{R}/tables/{{table}}.csv",
        html=f"{R}/tables/{{table}}.html",
        json=f"{R}/tables/{{table}}.json",
        fidelity_md=f"{R}/tables/{{table}}.fidelity.md",
        fidelity_json=f"{R}/tables/{{table}}.fidelity.json",
        fidelity_html=f"{R}/tables/{{table}}.fidelity.html",
    log:
        f"{R}/logs/comparison_table/{{table}}.log",
    benchmark:
        f"{R}/benchmarks/comparison_table/{{table}}.tsv"
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
        f"{R}/tables/{{table}}.json",
    output:
        table_figures("{table}"),
    log:
        f"{R}/logs/report_figures/{{table}}.log",
    benchmark:
        f"{R}/benchmarks/report_figures/{{table}}.tsv"
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
        paper_config="config/config.yaml",
        # What the projection's encode plan reads (llm_retrieval.cost_estimate, corpus_sizes.py).
        sizes="resources/collection_sizes.tsv",
        token_counts="resources/qwen_token_counts.tsv",
    output:
        md=f"{R}/report/cost.md",
        csv=f"{R}/report/cost.csv",
        html=f"{R}/report/cost.html",
        json=f"{R}/report/cost.json",
    log:
        f"{R}/logs/cost_table/cost.log",
    benchmark:
        f"{R}/benchmarks/cost_table/cost.tsv"
    conda:
        ENV
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    params:
        benchmarks=f"{R}/benchmarks",
    script:
        "../scripts/cost_table.py"


rule report_summary:
    input:
        tables=expand(f"{R}/tables/{{table}}.json", table=study_tables()),
        fidelity=expand(f"{R}/tables/{{table}}.fidelity.json", table=study_tables()),
        cost=f"{R}/report/cost.json",
        backbones=expand(f"{R}/models/{{backbone}}/backbone.json", backbone=study.used_backbones()),
        template="workflow/report/workflow.rst",
    output:
        md=f"{R}/report/summary.md",
        html=f"{R}/report/summary.html",
        fidelity=f"{R}/report/fidelity.html",
        front_page=f"{R}/report/workflow.rst",
        provenance=f"{R}/report/provenance.html",
    log:
        f"{R}/logs/report_summary/summary.log",
    benchmark:
        f"{R}/benchmarks/report_summary/summary.tsv"
    conda:
        ENV
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    params:
        pins=pin_files(),
    script:
        "../scripts/report_summary.py"
