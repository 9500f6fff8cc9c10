"""One estimate of the study's GPU cost (issue 23): the docs and the report's cost page print the output
of llm_retrieval.cost_estimate, computed from the plan, with its assumptions."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from llm_retrieval import cost_estimate
from llm_retrieval.report import cost
from llm_retrieval.study import Study

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"<!-- cost_estimate:[^\n]*-->\n(.*?)<!-- /cost_estimate -->", re.DOTALL)


@pytest.fixture(scope="module")
def paper():
    return cost_estimate.config_projection(ROOT / "config/config.yaml")


def test_the_docs_print_the_projection_the_function_computes(paper):
    printed = cost_estimate.to_markdown(paper)
    for doc in ("docs/encoding.md", "docs/training.md"):
        blocks = BLOCK.findall((ROOT / doc).read_text(encoding="utf-8"))
        assert blocks == [printed], f"{doc}: rerun `python -m llm_retrieval.cost_estimate` and paste its output"


def test_the_cost_page_prints_the_same_projection_and_its_assumptions(paper):
    page = cost.to_markdown([], paper)
    assert cost_estimate.to_markdown(paper) in page
    assert all(assumption in page for assumption in paper.assumptions)
    rows = cost.write_csv([], paper.rows).splitlines()[1:]
    assert sum(float(r.split(",")[11]) for r in rows) == pytest.approx(paper.total(), abs=0.01 * len(rows))


def test_the_cost_page_names_the_study_it_projects(paper):
    assert "Projected GPU cost of config/luo2024.yaml" in cost.to_markdown([], paper, "config/luo2024.yaml")
    assert "Projected GPU cost of config/config.yaml" in cost.to_markdown([], paper)


def test_encoding_counts_the_plan_s_tokens_and_loads_training_real_tokens(paper):
    import yaml

    from llm_retrieval.config_schema import validate_config

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(config, ROOT / "workflow/schemas/config.schema.yaml")
    study = Study(config)
    zeroshot = [r for r in paper.rows if r["stage"] == "encode" and r["setting"] == "zeroshot"]
    collections = study.collections_of_kind("zeroshot", "retrieval")
    assert {r["backbone"] for r in zeroshot} == set(study.backbones_of("zeroshot"))
    assert zeroshot[0]["tokens"] == sum(study.corpus_size(c)[1] for c in collections)  # the plan, not the caps
    assert zeroshot[0]["jobs"] == sum(study.corpus_shards(c) for c in collections)
    train = [r for r in paper.rows if r["stage"] == "train"]
    assert [r["tokens"] for r in train] == [cost_estimate.TRAIN_QUERIES * cost_estimate.TOKENS_PER_GROUP] * len(train)
    # 4N per token without recomputation (the paper config's auto: off), 6N with it.
    assert paper.per_backbone("train") == pytest.approx(
        4 * 6.53e9 * train[0]["tokens"] / (cost_estimate.PEAK_FLOPS * cost_estimate.TRAIN_MFU) / 3600, rel=1e-3
    )
    config["training"]["gradient_checkpointing"] = True
    assert cost_estimate.projection(config).per_backbone("train") == pytest.approx(1.5 * paper.per_backbone("train"))
