"""The study config (llm_retrieval.study and the schema): cross-checks, and defaults in the schema only."""

from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate

from llm_retrieval.study import ConfigError, Study, check_global_batch

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"


def _config(name="config/demo.yaml", edit=None):
    config = yaml.safe_load((ROOT / name).read_text())
    if edit:
        edit(config)
    validate(config, str(SCHEMA))
    return config


def test_study_rejects_unknown_backbone_and_bad_batch_product():
    config = _config()
    config["settings"]["zeroshot"]["backbones"].append("llama")
    with pytest.raises(ConfigError, match="settings.zeroshot.backbones: unknown backbone 'llama'"):
        Study(config)
    config = _config()
    config["training"]["global_batch"] = 7
    with pytest.raises(ConfigError, match="training.global_batch"):
        Study(config)


def test_the_ranks_and_the_dag_share_one_global_batch_check():
    from llm_retrieval.train import driver

    assert driver.check_batch is check_global_batch
    training = _config()["training"]
    assert check_global_batch(training, training["world_size"]) == training["global_batch"]
    with pytest.raises(ConfigError, match=f"world size {training['world_size'] + 1}"):
        check_global_batch(training, training["world_size"] + 1)


def test_tables_and_training_data_references_are_checked_by_name():
    config = _config()
    config["tables"]["x"] = {"title": "X", "setting": "nope", "measure": "ndcg_cut_10"}
    with pytest.raises(ConfigError, match="tables.x.setting: setting 'nope' is not configured"):
        Study(config)
    config = _config()
    config["training"]["data"]["collection"] = "nope"
    with pytest.raises(ConfigError, match="training.data.collection: unknown collection 'nope'"):
        Study(config)


def test_warmup_and_mined_depth_defaults_come_from_the_schema():
    def drop(config):
        del config["training"]["warmup_ratio"]
        del config["training"]["data"]["depth"]

    training = _config(edit=drop)["training"]
    schema = yaml.safe_load(SCHEMA.read_text())
    spec = schema["properties"]["training"]["properties"]
    assert training["warmup_ratio"] == spec["warmup_ratio"]["default"]
    assert training["data"]["depth"] == schema["$defs"]["training_source"]["then"]["properties"]["depth"]["default"]


def test_no_code_outside_the_schema_carries_a_config_default_of_its_own():
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "workflow/scripts").glob("*.py")]:
        text = path.read_text()
        for key in ("warmup_ratio", "depth", "weight_decay"):
            assert f'.get("{key}",' not in text, (path, key)


def test_a_table_measure_no_job_computes_is_a_config_error_naming_table_measure_and_known_ones():
    config = _config()
    name, table = next((n, t) for n, t in config["tables"].items() if "measure" in t)
    table["measure"] = "ndcg_cut_7"
    with pytest.raises(
        ConfigError,
        match=rf"tables\.{name}\.measure: measure 'ndcg_cut_7' is not computed "
        r"for retrieval collections \(known measures, retrieval: ndcg_cut_3, ",
    ):
        Study(config)


def test_a_column_measure_is_checked_like_a_table_measure():
    config = _config()
    name, table = next((n, t) for n, t in config["tables"].items() if "columns" in t)
    table["columns"][0]["measure"] = "P_5"
    with pytest.raises(ConfigError, match=rf"tables\.{name}\.columns\[0\]\.measure: measure 'P_5' is not computed"):
        Study(config)
    table["columns"][0]["measure"] = "ndcg_cut_5"
    Study(config)
