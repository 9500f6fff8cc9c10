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
