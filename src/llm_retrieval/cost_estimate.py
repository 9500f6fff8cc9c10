"""The study's projected GPU cost: the ONE estimate that docs/encoding.md, docs/training.md and the
report's cost page print (``python -m llm_retrieval.cost_estimate [--config config/config.yaml]``).

From the plan, not from caps: encoding counts the tokens the encode plan estimates for every
(setting, backbone, collection) it encodes (:meth:`.study.Study.corpus_size`: measured Qwen tokens per
word x the published sizes, truncated as configured, template included) and one model load per shard
job; training counts real tokens per query group. Nothing here is measured on a GPU: every number
is an estimate and :data:`ASSUMPTIONS` lists what it assumes; :func:`to_markdown` prints them with it.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field
from pathlib import Path

from . import model_resources
from .report.render import markdown_table
from .study import Study

REPO = Path(__file__).resolve().parents[2]
PEAK_FLOPS = 989e12  # H100 dense bf16, per GPU
ENCODE_MFU = 0.5  # ASSUMED model FLOPs utilisation while encoding (no GPU measurement)
TRAIN_MFU = 0.4  # ASSUMED while training (issue 11's goal; no GPU measurement)
MODEL_LOAD_S = 25  # ASSUMED seconds per 7B model load onto a GPU (device_map, safetensors)
TRAIN_QUERIES = 400_782  # rows of the train split of Tevatron/msmarco-passage-aug (docs/training.md)
TOKENS_PER_GROUP = 1_300  # real tokens of one query + 16 passages (published MS MARCO lengths; docs/training.md)
ASSUMPTIONS = (
    (
        f"encoding at an assumed {ENCODE_MFU:.0%} MFU and training at {TRAIN_MFU:.0%} of {PEAK_FLOPS:.3g} FLOP/s per GPU "
        "(H100 dense bf16); not measured on a GPU"
    ),
    (
        "FLOPs: 2N per encoded token, 4N per trained token (LoRA: no weight gradients of the frozen backbone), 6N with "
        "gradient checkpointing on; N = the backbone's matmul parameters without the token embedding; attention not "
        "counted"
    ),
    (
        "encoded tokens: the encode plan's estimate per corpus (published sizes x measured Qwen tokens per word, "
        "truncated as configured, template included for every text, also where the shared prefix is computed once); "
        "queries not counted"
    ),
    f"one model load per encode job at an assumed {MODEL_LOAD_S} s",
    (
        f"training: {TRAIN_QUERIES:,} query groups per epoch (training.max_steps x global_batch where fewer) of "
        f"{TOKENS_PER_GROUP:,} real tokens each (packed: no padding computed)"
    ),
)


@dataclass
class Projection:
    """Rows (stage, setting, backbone, tokens, jobs, gpu_h, label) and the assumptions behind them."""

    rows: list[dict] = field(default_factory=list)
    assumptions: tuple[str, ...] = ASSUMPTIONS

    def __bool__(self) -> bool:
        return bool(self.rows)

    def total(self, stage: str | None = None) -> float:
        return math.fsum(r["gpu_h"] for r in self.rows if stage is None or r["stage"] == stage)

    def per_backbone(self, stage: str) -> float:
        """GPU-h of one stage per backbone (the mean over the backbones that have it)."""
        backbones = {r["backbone"] for r in self.rows if r["stage"] == stage}
        return self.total(stage) / max(1, len(backbones))


def _matmul_params(config: dict, backbone: str) -> int:
    found = model_resources.sizes(config["backbones"][backbone])
    if found is None:  # a shape nothing records (a built demo model): counted as the 7B the defaults assume
        return int(model_resources.known_shape(model_resources.REFERENCE_MODEL)["params_encoder"])
    return found[0]


def _encode_rows(study: Study) -> list[dict]:
    """Per (setting, backbone): the corpora it encodes (not those it searches in another setting's encoding,
    Study.corpus_setting: there only its queries' job, whose tokens are not counted, as everywhere)."""
    rows = []
    for setting in study.dense_settings():
        collections = study.collections_of_kind(setting, "retrieval")
        own = [c for c in collections if study.corpus_setting(setting, c) == setting]
        tokens = sum(study.corpus_size(c, setting)[1] for c in own)
        jobs = sum(study.corpus_shards(c, setting) for c in own) + len(collections) - len(own)
        for backbone in study.backbones_of(setting):
            flops = 2 * _matmul_params(study.config, backbone) * tokens
            gpu_h = (flops / (PEAK_FLOPS * ENCODE_MFU) + jobs * MODEL_LOAD_S) / 3600
            rows.append(
                {
                    "stage": "encode",
                    "setting": setting,
                    "backbone": backbone,
                    "tokens": tokens,
                    "jobs": jobs,
                    "gpu_h": gpu_h,
                    "label": "estimate",
                }
            )
    return rows


def _train_rows(study: Study) -> list[dict]:
    """One row per (recipe, backbone) training job. A recipe's query groups per epoch are MS MARCO's
    (TRAIN_QUERIES; the groups of other tasks are not known before they are prepared) unless its
    max_steps x global_batch is fewer."""
    from . import axes, recipes

    rows = []
    for recipe in study.trained_recipes():
        for backbone in study.backbones_of(axes.recipe_setting("supervised", recipe)):
            training = recipes.training_for(study.config, recipe, backbone)
            groups = TRAIN_QUERIES * training["epochs"]
            if training.get("max_steps"):
                groups = min(groups, training["max_steps"] * training["global_batch"])
            per_token = 6 if training["gradient_checkpointing"] is True else 4
            tokens = groups * TOKENS_PER_GROUP
            flops = per_token * _matmul_params(study.config, backbone) * tokens
            rows.append(
                {
                    "stage": "train",
                    "setting": "supervised",
                    "recipe": recipe,
                    "backbone": backbone,
                    "tokens": tokens,
                    "jobs": 1,
                    "gpu_h": flops / (PEAK_FLOPS * TRAIN_MFU) / 3600,
                    "label": "estimate",
                }
            )
    return rows


def projection(config: dict) -> Projection:
    """The projected GPU-hours of a validated study config, per stage, setting and backbone (estimates)."""
    study = Study(config)
    return Projection(_encode_rows(study) + _train_rows(study))


def config_projection(path: str | Path) -> Projection:
    """:func:`projection` of a config file, validated (and its defaults filled) as the workflow does."""
    import yaml

    from .config_schema import validate_config

    path = Path(path)
    config = yaml.safe_load(path.read_text(encoding="utf-8"))
    validate_config(config, REPO / "workflow/schemas/config.schema.yaml", source=str(path))
    return projection(config)


def to_markdown(projected: Projection, name: str = "config/config.yaml") -> str:
    """The projection as the docs and the cost page print it: totals per stage, then the assumptions."""
    lines = [
        f"Projected GPU cost of {name} (**estimate**, `llm_retrieval.cost_estimate`):",
        "",
    ]
    per_stage = []
    for stage in ("encode", "train"):
        rows = [r for r in projected.rows if r["stage"] == stage]
        if rows:
            backbones = {r["backbone"] for r in rows}
            tokens = sum(r["tokens"] for r in rows) / len(backbones)
            per_stage.append(
                [
                    stage,
                    len(backbones),
                    f"{tokens / 1e9:.2f} G",
                    f"{projected.per_backbone(stage):,.1f}",
                    f"{projected.total(stage):,.0f}",
                ]
            )
    header = ["stage", "backbones", "tokens per backbone", "GPU-h per backbone", "GPU-h (all backbones)"]
    lines.append(markdown_table(header, per_stage, right_aligned=frozenset({1, 2, 3, 4})))
    trained = [r for r in projected.rows if r["stage"] == "train"]
    if len({r["recipe"] for r in trained}) > 1:
        own = {
            recipe: [r for r in trained if r["recipe"] == recipe]
            for recipe in dict.fromkeys(r["recipe"] for r in trained)
        }
        per_recipe = [[recipe, len(rs), f"{sum(r['gpu_h'] for r in rs):,.1f}"] for recipe, rs in own.items()]
        lines += [
            "",
            markdown_table(["training recipe", "backbones", "GPU-h"], per_recipe, right_aligned=frozenset({1, 2})),
        ]
    lines += ["", f"Total: **{projected.total():,.0f} GPU-h** (estimate). Assumptions:", ""]
    lines += [f"- {a}" for a in projected.assumptions]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="config/config.yaml")
    args = parser.parse_args()
    print(to_markdown(config_projection(REPO / args.config), args.config), end="")


if __name__ == "__main__":
    main()
