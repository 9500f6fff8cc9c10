# Study axes (settings.<setting>.axes): one table + curve per axis, from the metrics of the
# setting's variants (<setting>.<axis>-<value>), which the encode/search/evaluate rules produce.


rule axis_table:
    input:
        get_axis_table_metrics,
    output:
        md=layout.axis_table("{base}", "{axis}", "md"),
        csv=layout.axis_table("{base}", "{axis}", "csv"),
        svg=layout.axis_table("{base}", "{axis}", "svg"),
    log:
        layout.log("axis_table/{base}.{axis}"),
    benchmark:
        layout.benchmark("axis_table/{base}.{axis}")
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
