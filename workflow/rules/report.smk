# The paper's comparison tables (Markdown + CSV), published numbers side by side.


rule comparison_table:
    input:
        table_metrics,
    output:
        md=f"{R}/tables/{{table}}.md",
        csv=f"{R}/tables/{{table}}.csv",
    params:
        table=lambda wc: wc.table,
    log:
        f"{R}/logs/comparison_table/{{table}}.log",
    benchmark:
        f"{R}/benchmarks/comparison_table/{{table}}.tsv"
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    conda:
        ENV
    script:
        "../scripts/comparison_table.py"

