# Per-kind cluster resources (logic and defaults: src/llm_retrieval/cluster.py;
# cluster settings: `slurm:` in the config, see docs/slurm.md). Each rule states
# `threads: rule_threads(KIND)` and unpacks `**rule_resources(KIND)` into its resources.

from llm_retrieval import cluster, model_resources


def rule_threads(kind):
    return cluster.rule_threads(config, kind)


def rule_resources(kind):
    """Per-kind resources; encoding and training scale with the backbone's parameter count (model_resources.py)."""
    return model_resources.sized_resources(config, kind, cluster.rule_resources(config, kind), layout.backbone_record)


def rank_launcher():
    """Shell prefix starting the training ranks: srun when several, nothing for one."""
    return cluster.rank_launcher(config)
