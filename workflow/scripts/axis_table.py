from llm_retrieval.joblog import job_log
from llm_retrieval.paths import Layout
from llm_retrieval.report.axis_tables import write_axis_outputs
from llm_retrieval.report.tables import load_metrics
from llm_retrieval.study import EvalUnit, Study

with job_log(snakemake.log[0]) as log:
    files = set(snakemake.input)
    layout = Layout.of(snakemake.config)

    def load(setting, backbone, collection, query_set):
        path = layout.metrics(EvalUnit(setting, backbone, collection, query_set))
        if path not in files:
            raise ValueError(f"{path} is not among the rule's inputs")
        return load_metrics(path)

    write_axis_outputs(
        Study(snakemake.config),
        snakemake.wildcards.base,
        snakemake.wildcards.axis,
        load,
        snakemake.output.md,
        snakemake.output.csv,
        snakemake.output.svg,
    )
    log.info("wrote %s", snakemake.output.md)
