# The paper's comparison tables (Markdown + CSV), published numbers side by side.


rule comparison_table:
    input:
        table_metrics,
    output:
        md=f"{R}/tables/{{table}}.md",
        csv=f"{R}/tables/{{table}}.csv",
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
