# Guards around a run: a stale head lock is reclaimed at parse time; a second live head and
# unpinned hub revisions are refused at onstart (only when jobs are about to run, so `snakemake -n`
# always works).


# Snakemake's per-job work that this workflow does not need, skipped on the pinned Snakemake
# (llm_retrieval/dag_speed.py: the DAG build of a large study).
from llm_retrieval import dag_speed

dag_speed.install()


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


# Strict pins (the paper config) refuse to run jobs with unpinned hub revisions; others warn.
# UNPINNED and PINS_LOCK: common.smk, which applies the lock before anything reads a revision;
# preflight_only: common.smk's preflight section.
onstart:
    if workflow.is_main_process and OTHER_HEAD:
        raise WorkflowError(OTHER_HEAD)
    try:
        # The preflight reports unpinned revisions as a check of its own instead of refusing to start.
        if not preflight_only(workflow.dag_settings.targets):
            check_pins(UNPINNED, config["pins"]["strict"], PINS_LOCK, logger)
    except UnpinnedError as err:
        raise WorkflowError(str(err)) from None
