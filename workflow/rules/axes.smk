# Study axes (settings.<setting>.axes): one table + curve per axis, from the metrics of the
# setting's variants (<setting>.<axis>-<value>), which the encode/search/evaluate rules produce.


rule axis_table:
    input:
        axis_table_metrics,
    output:
        md=f"{R}/tables/axes/{{base}}.{{axis}}.md",
        csv=f"{R}/tables/axes/{{base}}.{{axis}}.csv",
        svg=f"{R}/tables/axes/{{base}}.{{axis}}.svg",
    log:
        f"{R}/logs/axis_table/{{base}}.{{axis}}.log",
    benchmark:
        f"{R}/benchmarks/axis_table/{{base}}.{{axis}}.tsv"
    wildcard_constraints:
        base="zeroshot|supervised",
        axis=regex_of(list(axes.AXES)),
    conda:
        ENV
    threads: rule_threads("report")
    resources:
        **rule_resources("report"),
    script:
        "../scripts/axis_table.py"
