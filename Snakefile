# How does an LLM's specialization change how well it works as a dense retriever?
# backbone x collection x setting: data -> BM25 / encode -> search -> metrics -> tables.
# Protocol: ../shared/PROTOCOL.md (copied references in resources/reference/).

from snakemake.utils import min_version, validate

min_version("9.0")


# The paper study unless another config is given: --configfile replaces it rather than
# being merged into it (a merge would mix the demo's backbones with the paper's).
if not workflow.config_settings.configfiles:

    configfile: "config/config.yaml"


validate(config, "workflow/schemas/config.schema.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/resources.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/backbones.smk"
include: "workflow/rules/bm25.smk"
include: "workflow/rules/encode.smk"
include: "workflow/rules/search.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/evaluate.smk"
include: "workflow/rules/report.smk"


rule all:
    input:
        all_tables(),
        all_metrics(),
        all_embeddings(),
    default_target: True
