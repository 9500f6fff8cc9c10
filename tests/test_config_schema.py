"""Config errors that say what to write: one line per schema problem, renamed keys with their new name."""

from __future__ import annotations

import copy

import pytest
import yaml
from snakemake.utils import validate
from workflow_helpers import ROOT, scratch_copy, snakemake

from llm_retrieval import cluster
from llm_retrieval.config_schema import RENAMED_KEYS, ConfigSchemaError, validate_config

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
SHIPPED = sorted(p.name for p in (ROOT / "config").glob("*.yaml"))


def demo_config() -> dict:
    return yaml.safe_load((ROOT / "config/demo.yaml").read_text())


def problems_of(config: dict) -> list[str]:
    with pytest.raises(ConfigSchemaError) as caught:
        validate_config(config, SCHEMA)
    return caught.value.problems


@pytest.mark.parametrize(
    "old, new",
    [("batch_size", "encoding.batch_tokens"), ("corpus_shards", "encoding.shard_tokens")],
)
def test_a_renamed_encoding_key_is_one_line_naming_its_replacement_and_value(old, new):
    config = demo_config()
    config["encoding"][old] = 77
    (line,) = problems_of(config)
    assert line.startswith(f"config key encoding.{old} (value 77): renamed to {new}")
    assert "not " in line  # what changed besides the name (tokens, not rows / shards)


def test_an_unknown_key_with_a_typo_names_the_closest_known_key():
    config = demo_config()
    config["encoding"]["normalise"] = False
    config["bm25"]["k2"] = 1.2
    assert problems_of(config) == [
        "config key bm25.k2 (value 1.2): unknown key; did you mean bm25.k1?",
        "config key encoding.normalise (value False): unknown key; did you mean encoding.normalize?",
    ]


def test_an_unknown_key_nothing_resembles_lists_the_known_keys():
    config = demo_config()
    config["search"] = {"zzz": 1}
    (line,) = problems_of(config)
    assert line == "config key search.zzz (value 1): unknown key; known keys here: backend"


def test_a_wrong_type_names_the_key_the_value_and_the_expected_type():
    config = demo_config()
    collection = next(iter(config["collections"]))
    config["collections"][collection]["top_k"] = "many"
    assert problems_of(config) == [f"config key collections.{collection}.top_k: 'many' is not of type 'integer'"]


def test_an_axis_value_in_the_wrong_shape_is_described_by_the_shape_it_was_meant_to_have():
    config = demo_config()
    config["settings"]["zeroshot"]["axes"] = {"steps": {"valeus": [1]}}
    assert problems_of(config) == [
        "config key settings.zeroshot.axes.steps: 'values' is a required property",
        (
            "config key settings.zeroshot.axes.steps.valeus (value [1]): unknown key; "
            "did you mean settings.zeroshot.axes.steps.values?"
        ),
    ]


def test_every_problem_is_counted_and_printed_on_its_own_line():
    config = demo_config()
    config["encoding"].update(batch_size=1, corpus_shards=2)
    config["bm25"]["k1"] = "high"
    with pytest.raises(ConfigSchemaError) as caught:
        validate_config(config, SCHEMA, source="old.yaml")
    message = str(caught.value)
    assert message.splitlines()[0] == "3 problems in old.yaml:"
    assert len(message.splitlines()) == 4
    assert "Failed validating" not in message and "On instance" not in message  # no jsonschema dump


@pytest.mark.parametrize("name", SHIPPED)
def test_defaults_are_filled_as_snakemakes_validate_fills_them(name):
    text = (ROOT / "config" / name).read_text()
    ours, snakemakes = yaml.safe_load(text), yaml.safe_load(text)
    if not isinstance(ours, dict) or "backbones" not in ours:
        pytest.skip(f"{name} is not a study config")
    validate(snakemakes, str(SCHEMA))
    before = copy.deepcopy(ours)
    assert validate_config(ours, SCHEMA) == snakemakes != before


def test_renamed_slurm_job_kinds_come_from_the_same_table_of_renames():
    kinds = {
        old.split(".")[-1]: new.split(".")[-1] for old, (new, _) in RENAMED_KEYS.items() if old.startswith("slurm.")
    }
    assert cluster.RENAMED_KINDS == kinds and "train" in kinds


def test_a_dry_run_with_an_old_config_prints_one_line_per_problem_and_no_schema_dump(tmp_path):
    workdir = scratch_copy(tmp_path)
    config = demo_config()
    config["encoding"].update(batch_size=64, corpus_shards=8)
    config["bm25"]["k2"] = 1.2
    collection = next(iter(config["collections"]))
    config["collections"][collection]["top_k"] = "many"
    (workdir / "old.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, "-n", "--configfile", "old.yaml", check=False)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    for line in (
        "4 problems in the config:",
        "  - config key bm25.k2 (value 1.2): unknown key; did you mean bm25.k1?",
        f"  - config key collections.{collection}.top_k: 'many' is not of type 'integer'",
    ):
        assert line in output.splitlines()
    assert "config key encoding.batch_size (value 64): renamed to encoding.batch_tokens" in output
    assert "config key encoding.corpus_shards (value 8): renamed to encoding.shard_tokens" in output
    assert "Failed validating" not in output and len(output.splitlines()) < 15
