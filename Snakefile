# How does an LLM's specialization change how well it works as a dense retriever?
# backbone x collection x setting: data -> BM25 / encode -> search -> metrics -> tables.
# Protocol: ../shared/PROTOCOL.md (copied references in resources/reference/).
# Every path below the results root: src/llm_retrieval/paths.py.

from snakemake.utils import min_version

from llm_retrieval.config_schema import ConfigSchemaError, validate_config

min_version("9.0")


include: "workflow/rules/guards.smk"


# The paper study unless another config is given: --configfile replaces it rather than
# being merged into it (a merge would mix the demo's backbones with the paper's).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


# The schema fills the defaults; a config that does not fit it is refused with one line per problem
# (a renamed key names its replacement, an unknown key the closest known one).
try:
    validate_config(config, f"{workflow.basedir}/workflow/schemas/config.schema.yaml")
except ConfigSchemaError as err:
    raise WorkflowError(str(err)) from None


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/backbones.smk"
include: "workflow/rules/bm25.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/sts.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/axes.smk"
include: "workflow/rules/preflight.smk"


# snakemake --report results/report.html: the first page (summary, missing tables), then every
# table, figure and page flagged by all_report() with its caption from workflow/report/.
report: report_front_page()


rule all:
    default_target: True
    input:
        all_report(),
        all_metrics(),
        all_embeddings(),
        all_axis_tables(),
