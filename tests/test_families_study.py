"""config/families.yaml end to end: every family of the table, zero-shot where it may and supervised,
offline on tiny builds plus MiniLM's real weights, into one table row (or column) per backbone."""

from __future__ import annotations

import csv

import pytest
from workflow_helpers import load_study, scratch_copy, snakemake


def read_csv(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.slow
def test_the_families_study_runs_every_family_end_to_end_and_tabulates_each_backbone(tmp_path):
    workdir = scratch_copy(tmp_path)
    snakemake(workdir, "--cores", "2", "--configfile", "config/families.yaml", timeout=1200)
    study = load_study(workdir / "config/families.yaml")
    labels = {name: study.config["backbones"][name]["label"] for name in study.config["backbones"]}
    supervised = read_csv(workdir / "results/tables/supervised.csv")
    rows = {row[next(iter(row))] for row in supervised}
    assert {labels[n] for n in study.backbones_of("supervised")} <= rows  # one row per trained backbone
    zero_shot = read_csv(workdir / "results/tables/coir.csv")[0]
    scores = {name: float(zero_shot[labels[name]]) for name in study.backbones_of("zeroshot")}
    assert set(scores) == set(study.backbones_of("zeroshot"))  # one column per zero-shot backbone
    # Real weights against random ones: the pretrained embedding model finds the functions a docstring names.
    assert scores["minilm"] > 0.5 and scores["minilm"] > max(v for k, v in scores.items() if k != "minilm")
