# How does an LLM's specialization change how well it works as a dense retriever?
# backbone x collection x setting: data -> BM25 / encode -> search -> metrics -> tables.
# Protocol: ../shared/PROTOCOL.md (copied references in resources/reference/).

from snakemake.utils import min_version

from llm_retrieval.config_schema import ConfigSchemaError, validate_config

min_version("9.0")


# A head killed with SIGKILL leaves Snakemake's lock behind: reclaim it, so that
# rerunning the same command resumes the study (see llm_retrieval/headlock.py).
if workflow.is_main_process:
    import os

    from llm_retrieval.headlock import live_head, reclaim_stale_lock

    reclaim_stale_lock(os.path.join(workflow.workdir_init, ".snakemake"))
    # A second head on the same results directory is refused at onstart (dry runs are fine);
    # said here too, in case Snakemake's own lock refuses first and suggests --unlock.
    OTHER_HEAD = live_head(os.path.join(workflow.workdir_init, ".snakemake"))
    if OTHER_HEAD:
        logger.warning(OTHER_HEAD)


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


# Strict pins (the paper config) refuse to run jobs with unpinned hub revisions; others warn.
# onstart runs only when jobs are about to run, so `snakemake -n` always works.
onstart:
    if workflow.is_main_process and OTHER_HEAD:
        raise WorkflowError(OTHER_HEAD)
    try:
        # The preflight reports unpinned revisions as a check of its own instead of refusing to start.
        if not preflight_only(workflow.dag_settings.targets):
            check_pins(UNPINNED, config["pins"]["strict"], PINS_LOCK, logger)
    except UnpinnedError as err:
        raise WorkflowError(str(err)) from None


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
