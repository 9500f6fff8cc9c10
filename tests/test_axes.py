"""Study axes: each value is a config entry that becomes a setting variant, checked at DAG build."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml
from snakemake.utils import validate
from workflow_helpers import ROOT

from llm_retrieval import axes
from llm_retrieval.study import ConfigError, Study
from llm_retrieval.train import snapshots


def mini() -> dict:
    config = yaml.safe_load(Path(ROOT / "tests/fixtures/mini.yaml").read_text())
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return config


def with_axes(config: dict, setting: str, **values) -> dict:
    config = copy.deepcopy(config)
    config["settings"][setting]["axes"] = values
    return config


def test_each_axis_value_is_a_setting_variant_with_its_own_evaluations():
    config = with_axes(mini(), "supervised", steps=[0, 2], passage_tokens=[16])
    study = Study(config)
    assert study.dense_settings() == [
        "zeroshot",
        "supervised",
        "supervised.steps-0",
        "supervised.steps-2",
        "supervised.passage_tokens-16",
    ]
    units = {(u.setting, u.retriever) for u in study.eval_units()}
    assert ("supervised.steps-2", "base") in units and ("supervised.passage_tokens-16", "base") in units
    assert axes.snapshot_steps(config) == [0, 2]
    assert axes.adapter_step(config, "supervised.steps-2") == 2 and axes.adapter_step(config, "supervised") is None
    assert axes.max_length_for(config, "supervised.passage_tokens-16")["passage"] == 16
    assert axes.max_length_for(config, "zeroshot") is None
    # the learning curve ends at the final adapter, the length curve is sorted by length
    assert axes.axis_points(config, "supervised", "steps")[-1] == ("supervised", 4)
    assert [x for _, x in axes.axis_points(config, "supervised", "passage_tokens")] == [16, 48]


def test_a_variant_changes_only_its_knob():
    config = with_axes(mini(), "zeroshot", passage_tokens=[128], instruction=[True])
    for name in ("stdlib-t2c", "synth-text"):
        config["collections"][name]["instruction"] = "Given a question, retrieve the answer"
    study = Study(config)
    length, instructed = "zeroshot.passage_tokens-128", "zeroshot.instruction-on"
    assert axes.encoding_for(config, length, "synth-text")["max_text_tokens"] == {"query": 32, "passage": 128}
    assert axes.encoding_for(config, instructed, "synth-text")["instruction"] == "Given a question, retrieve the answer"
    assert "instruction" not in axes.encoding_for(config, "zeroshot", "synth-text")
    # the shard plan follows the variant's passage length
    assert study.corpus_size("stdlib-t2c", length)[1] > study.corpus_size("stdlib-t2c", "zeroshot")[1]


def test_an_axis_can_run_on_part_of_its_setting():
    config = with_axes(
        mini(), "zeroshot", passage_tokens={"values": [16, 128], "backbones": ["base"], "collections": ["stdlib-t2c"]}
    )
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    study = Study(config)
    assert study.backbones_of("zeroshot.passage_tokens-16") == ["base"]
    assert study.collections_of("zeroshot.passage_tokens-128") == ["stdlib-t2c"]
    assert study.backbones_of("zeroshot") == ["base", "vl-i"]  # the setting itself is unchanged
    scoped = with_axes(mini(), "supervised", steps={"values": [3, 1], "backbones": ["base"]})
    assert axes.snapshot_steps(scoped) == [1, 3]
    bad = with_axes(mini(), "zeroshot", passage_tokens={"values": [16], "backbones": ["coder"]})
    with pytest.raises(ConfigError, match=r"settings.zeroshot.axes.passage_tokens.backbones: \['coder'\] not among"):
        Study(bad)


@pytest.mark.parametrize(
    "setting, values, edit, message",
    [
        (
            "supervised",
            {"steps": [2, 9]},
            None,
            "settings.supervised.axes.steps: steps [9] exceed training.max_steps=4",
        ),
        ("zeroshot", {"steps": [1]}, None, "settings.zeroshot.axes.steps: the steps axis applies to supervised only"),
        (
            "zeroshot",
            {"passage_tokens": [512, 8192]},
            lambda c: c["backbones"]["base"]["build"].update(max_position_embeddings=4096),
            "settings.zeroshot.axes.passage_tokens: [8192] exceed backbone 'base'",
        ),
        (
            "zeroshot",
            {"instruction": [True]},
            None,
            "settings.zeroshot.axes.instruction: collections without an `instruction`: stdlib-t2c, synth-text",
        ),
    ],
)
def test_an_axis_value_nothing_supports_is_a_config_error_naming_the_key(setting, values, edit, message):
    config = with_axes(mini(), setting, **values)
    if edit:
        edit(config)
    with pytest.raises(ConfigError) as err:
        Study(config)
    assert message in str(err.value)


def test_a_backbone_may_train_fewer_steps_but_not_fewer_than_the_curve_needs():
    config = with_axes(mini(), "supervised", steps=[2])
    config["settings"]["supervised"]["backbones"].append("vl-i")
    config["backbones"]["vl-i"]["training"] = {"max_steps": 3}
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    Study(config)
    assert axes.training_for(config, "vl-i")["max_steps"] == 3 and axes.training_for(config, "base")["max_steps"] == 4
    config["backbones"]["vl-i"]["training"] = {"max_steps": 1}
    with pytest.raises(
        ConfigError,
        match=r"settings.supervised.axes.steps: steps \[2\] exceed "
        r"backbones.vl-i.training.max_steps=1",
    ):
        Study(config)


def test_unknown_axis_is_refused_by_the_schema():
    config = with_axes(mini(), "zeroshot", temperature=[0.1])
    with pytest.raises(Exception, match="temperature"):
        validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))


def test_snapshot_steps_beyond_the_run_and_lost_snapshots_are_named(tmp_path):
    with pytest.raises(ValueError, match=r"settings.supervised.axes.steps: \[50\] exceed the run's 40"):
        snapshots.check_steps({10: "a", 50: "b"}, 40)

    class Job:
        checkpoint_dir = str(tmp_path / "ckpt")
        snapshots = {10: str(tmp_path / "out")}  # noqa: RUF012  (a stand-in TrainJob, read only)

    with pytest.raises(RuntimeError, match="adapter of step 10 is missing"):
        snapshots.export(Job)
    kept = snapshots.kept_path(Job.checkpoint_dir, 10)
    kept.mkdir(parents=True)
    (kept / "adapter_config.json").write_text("{}")
    snapshots.export(Job)
    assert (tmp_path / "out/adapter_config.json").read_text() == "{}"


PROMPTS = {
    "query": 'Query: "{text}". Use one word to represent the query in a retrieval task.',
    "passage": 'Passage: "{text}". Use one word to represent the passage in a retrieval task.',
    "assistant_prefill": 'The word is: "',
}
TASK = "Given a docstring, retrieve the function it describes"


def test_an_instruction_sits_where_each_format_reads_it_and_never_on_documents(tiny_backbones):
    from llm_retrieval.encoder import EncoderSpec
    from llm_retrieval.modeling import load_tokenizer

    tok = load_tokenizer(tiny_backbones["qwen2"]["path"])
    encoding = {"prompts": PROMPTS, "max_text_tokens": {"query": 16, "passage": 16}, "instruction": TASK}
    zero_shot, _ = EncoderSpec(tiny_backbones["qwen2"], encoding).formatter_and_budgets(tok)
    query = tok.decode(zero_shot.token_ids("query", ["sort a list"], 16)[0])
    assert query.startswith(f'<|im_start|>user\n{TASK}\nQuery: "sort a list". Use one word')
    assert TASK not in tok.decode(zero_shot.token_ids("passage", ["def f(): pass"], 16)[0])

    supervised, budgets = EncoderSpec(
        tiny_backbones["qwen2"], encoding, None, {"query": 12, "passage": 16}
    ).formatter_and_budgets(tok)
    ids = supervised.token_ids("query", ["sort a list"], budgets["query"])[0]
    assert tok.decode(ids).startswith(f"Instruct: {TASK}\nQuery: sort a list") and ids[-1] == tok.eos_token_id
    assert tok.decode(supervised.token_ids("passage", ["def f(): pass"], budgets["passage"])[0]).startswith(
        "Passage: def f(): pass"
    )
    _, plain_budgets = EncoderSpec(
        tiny_backbones["qwen2"], {**encoding, "instruction": None}, None, {"query": 12, "passage": 16}
    ).formatter_and_budgets(tok)
    assert budgets == plain_budgets  # the instruction does not take from the text's budget


@pytest.mark.parametrize("name", ["config.yaml", "demo.yaml", "scaling.yaml", "axes.yaml", "luo2024-demo.yaml"])
def test_every_shipped_config_validates_with_its_axes(name):
    config = yaml.safe_load(Path(ROOT / "config" / name).read_text())
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    study = Study(config)
    if name == "axes.yaml":  # the long-document length sweep up to 8192 tokens, BERT supervised only
        assert "zeroshot.passage_tokens-8192" in study.dense_settings()
        assert study.collections_of("zeroshot.passage_tokens-8192") == ["narrativeqa"]
        assert "bert-base" in study.backbones_of("supervised") and "bert-base" not in study.backbones_of("zeroshot")
    if name == "demo.yaml":  # the demo shows every axis
        assert {v.axis for v in study.variants} == {"steps", "passage_tokens", "instruction"}
        assert any(b["architecture"] == "bert" for b in config["backbones"].values())
