"""Training recipes (docs/recipes.md): the config model, the task mixture, instructions in training and
at evaluation, and the plan of a config with several recipes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml
from snakemake.utils import validate
from train_fixtures import synthetic_task, tiny_backbone, training_config, write_groups
from workflow_helpers import ROOT, job_counts, planned_jobs, scratch_copy, snakemake

from llm_retrieval import axes, recipes
from llm_retrieval.data import training_sources
from llm_retrieval.encoder import EncoderSpec
from llm_retrieval.study import ConfigError, Study
from llm_retrieval.train.dataset import (
    GroupSchedule,
    TaskMixture,
    instruction_for,
    read_groups,
    sample_group,
    share_of_steps,
)

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
RECIPES = ROOT / "config/recipes.yaml"


def _config(path: Path = RECIPES, edit=None) -> dict:
    config = yaml.safe_load(path.read_text())
    if edit:
        edit(config)
    validate(config, str(SCHEMA))
    return config


# --- the config model -------------------------------------------------------------------------------


def test_every_training_source_type_in_the_schema_has_a_groups_preparer_and_back():
    schema = yaml.safe_load(SCHEMA.read_text())
    assert set(schema["$defs"]["training_source"]["properties"]["type"]["enum"]) == set(training_sources.PREPARERS)


def test_the_training_section_is_the_default_recipe_and_recipes_override_only_what_they_name():
    config = _config()
    made = recipes.recipes(config)
    assert list(made) == ["default", "c2t", "multi", "instructed"]
    assert made["default"].training is config["training"] and made["default"].tasks == (
        recipes.RecipeTask("default", None),
    )
    multi = made["multi"].training
    own = config["recipes"]["multi"]["training"]["max_steps"]
    assert multi["max_steps"] == own != made["default"].training["max_steps"] == config["training"]["max_steps"]
    # Schema defaults are not filled into a recipe's overrides: they would undo the training section's values.
    assert list(config["recipes"]["multi"]["training"]) == ["max_steps"]
    assert {k: v for k, v in multi.items() if k != "max_steps"} == {
        k: v for k, v in config["training"].items() if k != "max_steps"
    }
    instructed = made["instructed"].tasks
    assert [t.task for t in instructed] == ["default", "c2t", "n2c"] and all(t.weight is None for t in instructed)
    assert instructed[1].query_instructions == ("Given a Python function, retrieve the sentence that documents it",)


def test_a_recipe_override_merges_nested_sections_key_by_key():
    merged = recipes.merged_training({"lora": {"rank": 8, "alpha": 16}, "seed": 1}, {"lora": {"rank": 4}})
    assert merged == {"lora": {"rank": 4, "alpha": 16}, "seed": 1}


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda c: c["recipes"]["multi"]["tasks"].update(nli={}), "recipes.multi.tasks: unknown task.*nli"),
        (lambda c: c["recipes"]["c2t"].update(backbones=["nope"]), "recipes.c2t.backbones: nope"),
        (lambda c: c["settings"]["supervised"]["axes"].update(recipe=["c2t", "ghost"]), "unknown recipe.*ghost"),
        (
            lambda c: c["settings"]["supervised"]["axes"]["instruction"].update(recipes=["multi", "c2t"]),
            None,
        ),  # both are recipe axis values: fine
        (
            lambda c: c["settings"]["supervised"]["axes"].update(recipe=["c2t", "multi"]),
            "instruction.recipes: instructed not among settings.supervised.axes.recipe",
        ),
        (lambda c: c["collections"]["stdlib-t2c"]["instructions"].pop("ood"), "without an instruction set 'ood'"),
        (lambda c: c["training_tasks"]["c2t"]["source"].update(query_set="dev"), "training_tasks.c2t.source.query_set"),
        (lambda c: c["recipes"]["multi"]["training"].update(global_batch=8), "recipes.multi: training.global_batch=8"),
        (
            lambda c: c["recipes"]["multi"]["tasks"]["c2t"].update(weight=2.0),
            "recipes.multi.tasks: give every task a weight",
        ),
        (
            lambda c: c["recipes"]["multi"]["training"].update(max_length={"passage": 99999}),
            "recipes.multi.training.max_length: .*passage.* exceed the position limit of backbone 'base'",
        ),
    ],
)
def test_a_recipe_naming_what_does_not_exist_is_a_config_error_naming_the_key(edit, message):
    config = _config(edit=edit)
    if message is None:
        Study(config)
        return
    with pytest.raises(ConfigError, match=message):
        Study(config)


@pytest.mark.parametrize("key", ["data", "world_size"])
def test_a_recipe_cannot_override_its_data_or_world_size(key):
    value = {"type": "tevatron"} if key == "data" else 2
    with pytest.raises(Exception, match="should not be valid|is not allowed|not"):
        _config(edit=lambda c: c["recipes"]["multi"]["training"].update({key: value}))


def test_each_recipe_is_a_setting_variant_evaluating_its_own_retriever():
    study = Study(_config())
    assert study.trained_recipes() == ["default", "c2t", "multi", "instructed"]
    assert study.trained_tasks() == ["default", "c2t", "n2c"]
    assert axes.recipe_of(study.config, "supervised.recipe-multi") == "multi"
    assert axes.recipe_of(study.config, "supervised.recipe-instructed.instruction-ood") == "instructed"
    assert axes.recipe_of(study.config, "supervised") == "default"
    assert study.collections_of("supervised.recipe-instructed.instruction-id") == ["stdlib-t2c"]
    ood = axes.encoding_for(study.config, "supervised.recipe-instructed.instruction-ood", "stdlib-t2c")
    assert ood["instruction"] == study.collection("stdlib-t2c")["instructions"]["ood"]["query"]
    assert axes.max_length_for(study.config, "supervised.recipe-multi") == study.config["training"]["max_length"]


def test_each_axis_table_reads_the_runs_of_its_own_scope_and_recipes():
    study = Study(_config())
    asked = []

    def load(setting, backbone, collection, query_set):
        asked.append((setting, collection))
        return {"aggregate": {"mrr_10": 0.5, "ndcg_cut_10": 0.25 if setting == "supervised" else 0.5}}

    from llm_retrieval.report.axis_tables import axis_rows

    rows = axis_rows(study, "supervised", "instruction", load)
    assert [(r["recipe"], r["collection"], r["instruction"]) for r in rows] == [
        ("instructed", "Docstring2Code", "off"),
        ("instructed", "Docstring2Code", "id"),
        ("instructed", "Docstring2Code", "ood"),
    ]
    assert {s for s, _ in asked} == set(axes.axis_settings(study.config, "supervised", "instruction"))
    recipe_rows = axis_rows(study, "supervised", "recipe", load)
    assert len(recipe_rows) == 4 * 3  # four recipes on three collections
    assert {r["delta_ndcg_cut_10"] for r in recipe_rows if r["recipe"] != r["baseline"] == "default"} == {0.25}


# --- the task mixture -------------------------------------------------------------------------------


def test_a_one_task_mixture_is_the_single_source_schedule():
    single = GroupSchedule(50, 2, 3, 2, seed=7, epochs=3)
    mixture = TaskMixture([50], [None], 2, 3, 2, seed=7, epochs=3)
    assert mixture.total_steps == single.total_steps == 12
    for step in range(mixture.total_steps):
        for micro in range(3):
            for rank in range(2):
                batch = mixture.micro_batch(step, micro, rank)
                assert (batch.task, batch.seed) == (0, 7)
                assert (batch.epoch, batch.indices) == single.micro_batch(step, micro, rank)


def test_every_global_batch_comes_from_one_task_and_each_task_gets_its_share():
    sizes, per_device, accumulation, world = [40, 100, 24], 2, 2, 2  # global batch 8: 5, 12 and 3 steps per epoch
    mixture = TaskMixture(sizes, [None] * 3, per_device, accumulation, world, seed=3, epochs=2)
    assert mixture.counts == [5, 12, 3] and mixture.total_steps == 40
    steps_of = {0: 0, 1: 0, 2: 0}
    for step in range(mixture.total_steps):
        batches = [mixture.micro_batch(step, m, r) for m in range(accumulation) for r in range(world)]
        assert len({b.task for b in batches}) == 1, f"step {step} mixes tasks"
        steps_of[batches[0].task] += 1
        within_epoch = [i for b in batches for i in b.indices]
        assert len(set(within_epoch)) == len(within_epoch)  # no group twice in one batch
    assert steps_of == {0: 10, 1: 24, 2: 6}
    order = [mixture.task_of(s)[0] for s in range(20)]
    assert order != sorted(order)  # interleaved, not task after task


def test_the_task_schedule_and_instructions_are_a_function_of_the_step_so_resume_reproduces_them():
    run = TaskMixture([40, 100, 24], [1.0, 1.0, 2.0], 2, 2, 2, seed=3, max_steps=50)
    assert run.counts == share_of_steps([5, 12, 3], [1.0, 1.0, 2.0]) == [5, 5, 10]
    uninterrupted = [run.micro_batch(s, m, r) for s in range(50) for m in range(2) for r in range(2)]
    resumed = TaskMixture([40, 100, 24], [1.0, 1.0, 2.0], 2, 2, 2, seed=3, max_steps=50)  # a fresh process at step 30
    assert [resumed.micro_batch(s, m, r) for s in range(30, 50) for m in range(2) for r in range(2)] == uninterrupted[
        30 * 4 :
    ]
    instructions = ("a", "b", "c")
    drawn = [instruction_for(instructions, b.seed, b.epoch, i) for b in uninterrupted for i in b.indices]
    again = [instruction_for(instructions, b.seed, b.epoch, i) for b in uninterrupted for i in b.indices]
    assert drawn == again and set(drawn) == set(instructions)
    assert instruction_for((), 3, 0, 1) is None
    with pytest.raises(ValueError, match="every task of a recipe a weight, or none"):
        share_of_steps([5, 12], [1.0, None])


def test_a_source_without_hard_negatives_trains_with_in_batch_negatives_only(tmp_path):
    task = synthetic_task()
    groups = read_groups(write_groups(task, tmp_path / "g.parquet", n_neg=0))
    assert sample_group(groups[0], 4, 42, 0, 0) == [groups[0].positives[0]]


# --- one-task mixture = today's single-source training ------------------------------------------


def _single_source_inputs(groups, batcher, cfg, epoch, indices):
    """Today's micro-step before recipes (kept here as the reference): one source, no instruction."""
    passages = [p for i in indices for p in sample_group(groups[i], cfg["group_size"], cfg["seed"], epoch, i)]
    q = batcher.tensors("query", [groups[i].query for i in indices])
    return [*q, *batcher.tensors("passage", batcher.passage_texts(passages))]


def test_a_one_task_mixture_has_the_loss_and_gradients_of_single_source_training(tmp_path):
    from llm_retrieval.modeling import load_tokenizer
    from llm_retrieval.train.loss import info_nce
    from llm_retrieval.train.model import Batcher, trainable_retriever
    from llm_retrieval.train.rank import micro_batch

    task = synthetic_task()
    backbone = tiny_backbone(tmp_path / "backbone", list(task["docs"].values()) + list(task["queries"].values()))
    groups = read_groups(write_groups(task, tmp_path / "g.parquet"))
    cfg = training_config(packing=False, per_device_batch=8, global_batch=8, world_size=1)
    batcher = Batcher(load_tokenizer(str(backbone)), cfg["max_length"])
    mixture = TaskMixture([len(groups)], [None], 8, 1, 1, cfg["seed"], max_steps=3)
    single = GroupSchedule(len(groups), 8, 1, 1, cfg["seed"], max_steps=3)

    def loss_and_grads(inputs):
        torch.manual_seed(0)
        model = trainable_retriever(str(backbone), "qwen2", cfg["lora"])
        with torch.no_grad():  # LoRA B starts at zero: give it values so every LoRA gradient is live
            for name, p in model.named_parameters():
                if "lora_B" in name:
                    p.normal_(0, 0.02)
        loss = info_nce(*model(*inputs), cfg["temperature"], gather=False)
        loss.backward()
        return loss.item(), {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}

    for step in range(3):
        mixed = micro_batch(groups, batcher, cfg, mixture.micro_batch(step, 0, 0), "cpu", packing=False)
        today = _single_source_inputs(groups, batcher, cfg, *single.micro_batch(step, 0, 0))
        assert all(torch.equal(a, b) for a, b in zip(mixed, today))
    loss_a, grads_a = loss_and_grads(mixed)
    loss_b, grads_b = loss_and_grads(today)
    assert loss_a == loss_b and grads_a.keys() == grads_b.keys()
    assert all(torch.equal(grads_a[n], grads_b[n]) for n in grads_a)


# --- instructions in the family's format ----------------------------------------------------------


def _bert(tmp_path):
    from llm_retrieval.tiny_models import build_tiny_model

    texts = ["Given a question retrieve the answer", "what is rye bread", "bread is baked", "Instruct: Query:"] * 20
    build = {
        "seed": 0,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 1,
        "num_attention_heads": 2,
        "vocab_size": 300,
    }
    return build_tiny_model("bert", build, tmp_path / "bert", texts)


def _contains(seq: list[int], part: list[int]) -> bool:
    return any(seq[i : i + len(part)] == part for i in range(len(seq) - len(part) + 1))


def test_bert_keeps_its_instruction_at_encoding_and_in_training(tmp_path):
    from llm_retrieval.modeling import load_tokenizer
    from llm_retrieval.train.model import Batcher

    record = _bert(tmp_path)
    tokenizer = load_tokenizer(record["path"])
    instruction = "Given a question retrieve the answer"
    told = tokenizer(instruction, add_special_tokens=False)["input_ids"]
    text = tokenizer("what is rye bread", add_special_tokens=False)["input_ids"]
    max_length = {"query": 8, "passage": 16}
    spec = EncoderSpec(record, {"instruction": instruction}, max_length=max_length)
    formatter, budgets = spec.formatter_and_budgets(tokenizer)
    plain, plain_budgets = EncoderSpec(record, {}, max_length=max_length).formatter_and_budgets(tokenizer)
    ids = formatter.token_ids("query", ["what is rye bread"], budgets["query"])[0]
    assert _contains(ids, told) and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    kept = text[: budgets["query"]]  # the instruction takes nothing from the text's budget
    assert budgets == plain_budgets and ids[-1 - len(kept) : -1] == kept
    assert not _contains(plain.token_ids("query", ["what is rye bread"], budgets["query"])[0], told)
    assert (
        formatter.token_ids("passage", ["bread is baked"], 16)[0]
        == plain.token_ids("passage", ["bread is baked"], 16)[0]
    )  # passages never get one
    batcher = Batcher(tokenizer, max_length, "bert", record["path"])
    trained, mask = batcher.tensors("query", ["what is rye bread", "what is rye bread"], [instruction, None])
    assert trained[0][mask[0].bool()].tolist() == ids  # training formats as encoding does
    assert not _contains(trained[1][mask[1].bool()].tolist(), told)


def test_a_decoder_query_gets_its_instruction_before_the_query_prefix(tmp_path):
    from llm_retrieval.modeling import load_tokenizer
    from llm_retrieval.train.model import Batcher

    task = synthetic_task()
    backbone = tiny_backbone(tmp_path / "backbone", list(task["docs"].values()) + list(task["queries"].values()))
    tokenizer = load_tokenizer(str(backbone))
    batcher = Batcher(tokenizer, {"query": 16, "passage": 24})
    ids, mask = batcher.tensors("query", ["the zaaa", "the zaaa"], ["find it", None])
    decoded = tokenizer.decode(ids[0][mask[0].bool()])
    assert decoded.startswith("Instruct: find it\nQuery: ") and decoded.endswith(tokenizer.eos_token)
    assert tokenizer.decode(ids[1][mask[1].bool()]).startswith("Query: ")


def test_a_named_instruction_set_gives_each_query_one_of_its_sentences_chosen_by_its_id():
    from llm_retrieval.prompts import instruction_of_query

    ood = ("a", "b")
    chosen = [instruction_of_query(ood, f"q{i}") for i in range(40)]
    assert chosen == [instruction_of_query(ood, f"q{i}") for i in range(40)] and set(chosen) == {"a", "b"}


# --- the plan --------------------------------------------------------------------------------------
# config/recipes.yaml is planned here, not run: the end-to-end run of recipes (single- vs multi-task, an
# instruction-trained retriever with seen and unseen instructions, one recipe retrained) is config/luo2024-demo.yaml's
# (tests/test_luo2024_demo.py), one run for both, to keep CI's time.


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return scratch_copy(tmp_path_factory.mktemp("recipes"))


def test_several_recipes_plan_one_training_per_recipe_and_backbone_and_one_groups_job_per_task(workdir):
    jobs = planned_jobs(snakemake(workdir, "-n", "--configfile", "config/recipes.yaml").stdout)
    trained = sorted((w["recipe"], w["backbone"]) for rule, w in jobs if rule == "train_lora")
    assert trained == [("c2t", "base"), ("default", "base"), ("instructed", "base"), ("multi", "base")]
    assert sorted(w["task"] for rule, w in jobs if rule == "training_groups") == ["c2t", "default", "n2c"]
    settings = {w["setting"] for rule, w in jobs if rule == "encode_queries_and_first_shard"}
    assert settings == {
        "supervised",
        "supervised.recipe-c2t",
        "supervised.recipe-multi",
        "supervised.recipe-instructed",
        "supervised.recipe-instructed.instruction-id",  # -ood shares its corpus encoding: queries only
    }


def test_the_paper_plan_trains_once_per_backbone_with_the_default_recipe(workdir):
    counts = job_counts(planned_jobs(snakemake(workdir, "-n", "--configfile", "config/config.yaml").stdout))
    supervised = yaml.safe_load((ROOT / "config/config.yaml").read_text())["settings"]["supervised"]["backbones"]
    assert counts["train_lora"] == len(supervised) and counts["training_groups"] == 1


def test_the_cost_page_sums_each_recipes_training_and_evaluation_jobs(tmp_path):
    from llm_retrieval.report import cost

    bench = tmp_path / "benchmarks"
    for rel in (
        "train_lora/multi/base.tsv",
        "train_lora/default/base.tsv",
        "encode_queries_and_first_shard/supervised.recipe-multi/base/stdlib-t2c.tsv",
        "dense_search/supervised.recipe-instructed.instruction-ood/base/stdlib-t2c.tsv",
        "bm25_index/stdlib-t2c.tsv",
        "axis_table/supervised.recipe.tsv",
        "comparison_table/supervised.tsv",
    ):
        (bench / rel).parent.mkdir(parents=True, exist_ok=True)
        (bench / rel).write_text("s\th:m:s\tmax_rss\tcpu_time\n36.0\t0:00:36\t100\t30\n")
    jobs = cost.measured(_config(), bench)
    assert {j["job"]: j["recipe"] for j in jobs} == {
        "bm25_index/stdlib-t2c.tsv": None,
        "train_lora/default/base.tsv": "default",
        "axis_table/supervised.recipe.tsv": None,
        "comparison_table/supervised.tsv": None,
        "train_lora/multi/base.tsv": "multi",
        "encode_queries_and_first_shard/supervised.recipe-multi/base/stdlib-t2c.tsv": "multi",
        "dense_search/supervised.recipe-instructed.instruction-ood/base/stdlib-t2c.tsv": "instructed",
    }
    page = cost.to_markdown(jobs, [])
    assert "| multi | 2 | 1 | 72.0 |" in page and "| instructed | 1 | 0 | 36.0 |" in page


def test_the_cost_projection_has_one_training_row_per_recipe_and_backbone():
    from llm_retrieval.cost_estimate import projection, to_markdown

    projected = projection(_config())
    trained = [(r["recipe"], r["backbone"]) for r in projected.rows if r["stage"] == "train"]
    assert trained == [("default", "base"), ("c2t", "base"), ("multi", "base"), ("instructed", "base")]
    assert "| training recipe | backbones | GPU-h |" in to_markdown(projected, "config/recipes.yaml")


@pytest.mark.slow
def test_a_multi_task_run_with_instructions_resumed_after_a_failure_ends_as_an_uninterrupted_one(tmp_path):
    """Task order, groups and each query's instruction are functions of the step: resume needs no saved state."""
    from safetensors.torch import load_file

    from llm_retrieval.train import checkpoint
    from llm_retrieval.train.driver import launch
    from llm_retrieval.train.job import TrainJob, TrainTask

    first, second = synthetic_task(0), synthetic_task(1)
    texts = [t for task in (first, second) for t in (*task["docs"].values(), *task["queries"].values())]
    backbone = str(tiny_backbone(tmp_path / "backbone", texts + ["Instruct: find\nthe"] * 3))
    tasks = (
        TrainTask("a", str(write_groups(first, tmp_path / "a.parquet")), None, ("find the code", "look it up")),
        TrainTask("b", str(write_groups(second, tmp_path / "b.parquet", n_neg=0)), None, ("match it",)),
    )
    training = training_config(max_steps=8, checkpoint_every=3)  # two ranks (spawned: one process group each)

    def job(name, fail_at_step=None):
        out = tmp_path / name
        return TrainJob(
            backbone,
            "qwen2",
            tasks,
            str(out / "adapter"),
            str(out / "ckpt"),
            str(out / "log.json"),
            training,
            fail_at_step=fail_at_step,
        )

    reference = launch(job("straight"), world_size=2)
    assert reference["tasks"] == ["a", "b"] and reference["task_steps_per_epoch"] == [7, 7]
    with pytest.raises(Exception, match="injected failure after optimizer step 5"):
        launch(job("resumed", fail_at_step=5), world_size=2)
    assert checkpoint.latest_complete(tmp_path / "resumed/ckpt").name == "step-00000003"
    resumed = launch(job("resumed"), world_size=2)
    assert resumed["resumed_from"] == [3] and resumed["steps_this_process"] == 5
    assert resumed["losses"] == pytest.approx(reference["losses"], abs=1e-6)
    a = load_file(str(tmp_path / "straight/adapter/adapter_model.safetensors"))
    b = load_file(str(tmp_path / "resumed/adapter/adapter_model.safetensors"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)
