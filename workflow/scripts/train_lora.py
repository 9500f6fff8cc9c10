"""Train one (recipe, backbone)'s LoRA retriever (supervised setting); resumes from its newest checkpoint.

The Snakemake rule runs it from the command line, so that on Slurm ``srun`` can start
one copy per GPU (a ``script:`` cannot be wrapped in srun); with one rank it spawns
nothing. For example::

    srun python workflow/scripts/train_lora.py --backbone results/models/base/backbone.json \
        --groups default=results/training_groups/default.parquet --config config/config.yaml \
        --adapter results/train/default/base/adapter --report results/train/default/base/training.json \
        --checkpoints results/checkpoints/default/base --log results/logs/train_lora/default/base.log

A recipe of several tasks names each one's groups (``--groups TASK=PATH``, repeated) and their weights and
query and passage instructions (``--task-options '{"TASK": {"weight": null, "query_instructions": [...],
"passage_instructions": [...]}}'``).
"""

import argparse
import json
import os
from pathlib import Path

from llm_retrieval.joblog import job_log
from llm_retrieval.train.driver import launch, under_slurm_ranks
from llm_retrieval.train.job import TrainJob, TrainTask


def _from_command_line() -> tuple[TrainJob, str | None]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbone", required=True, help="backbone.json record (path, architecture)")
    parser.add_argument(
        "--groups",
        required=True,
        action="append",
        metavar="[TASK=]PATH",
        help="a task's training groups Parquet (TRAIN_GROUPS_SCHEMA); repeated for a mixture",
    )
    parser.add_argument(
        "--task-options",
        default="{}",
        help="JSON: per task, weight (null: proportional), query_instructions and passage_instructions",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", help="study config YAML (its `training` section is used)")
    source.add_argument("--training", help="the `training` section itself, as JSON")
    parser.add_argument("--adapter", required=True, help="output adapter folder")
    parser.add_argument("--report", required=True, help="output training log JSON")
    parser.add_argument("--checkpoints", required=True, help="checkpoint folder (resumed from if present)")
    parser.add_argument("--deepspeed-config", help="overrides training.deepspeed_config")
    parser.add_argument("--fail-at-step", type=int, help="raise after this optimizer step (failure drill)")
    parser.add_argument(
        "--snapshot",
        action="append",
        default=[],
        metavar="STEP=DIR",
        help="also export the adapter after STEP optimizer steps to DIR (learning curve)",
    )
    parser.add_argument("--log")
    args = parser.parse_args()
    if args.training:
        training = json.loads(args.training)
    else:
        import yaml

        from llm_retrieval.config_schema import validate_config

        with open(args.config, encoding="utf-8") as f:
            config = yaml.safe_load(f)
        # The schema checks the config and fills its defaults (warmup_ratio, ...), as the workflow does.
        validate_config(
            config, os.path.join(os.path.dirname(__file__), "..", "schemas", "config.schema.yaml"), source=args.config
        )
        training = config["training"]
    backbone = json.loads(Path(args.backbone).read_text(encoding="utf-8"))
    options = json.loads(args.task_options)
    named = [g.split("=", 1) if "=" in g else ["default", g] for g in args.groups]
    tasks = tuple(
        TrainTask(
            name,
            path,
            options.get(name, {}).get("weight"),
            tuple(options.get(name, {}).get("query_instructions", ())),
            tuple(options.get(name, {}).get("passage_instructions", ())),
        )
        for name, path in named
    )
    job = TrainJob(
        backbone["path"],
        backbone["architecture"],
        tasks,
        args.adapter,
        args.checkpoints,
        args.report,
        training,
        args.deepspeed_config,
        args.fail_at_step,
        pooling=backbone.get("pooling"),
        snapshots={int(step): path for step, path in (s.split("=", 1) for s in args.snapshot)},
    )
    return job, args.log


def main() -> None:
    job, log_path = _from_command_line()
    with job_log(log_path) as log:
        if under_slurm_ranks():
            log.info("rank %s of %s (Slurm task)", os.environ.get("SLURM_PROCID"), os.environ.get("SLURM_NTASKS"))
        result = launch(job)
        if result is not None:
            log.info(
                "trained %d steps in %.0f s (%.3f s/step); final loss %.4f",
                result["steps"],
                result["train_seconds"],
                result["seconds_per_step"],
                result["losses"][-1],
            )


# Work only here: without srun, several ranks are spawned processes, and each re-imports this file
# (as __mp_main__) before it starts; top-level work would run again in every one of them.
if __name__ == "__main__":
    main()
