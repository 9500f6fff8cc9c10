"""Passage-side instructions (docs/recipes.md), in training and at evaluation, and the recipe axis's baseline
recipe for its delta columns: the family formats, the training batches, resume, the corpus encodings the plan
makes, and the deltas against each collection's baseline."""

from __future__ import annotations

import re

import pytest
import torch
import yaml
from snakemake.utils import validate
from train_fixtures import synthetic_task, tiny_backbone, training_config, write_groups
from workflow_helpers import ROOT, planned_jobs, scratch_copy, snakemake

from llm_retrieval import axes, recipes
from llm_retrieval.encoder import EncoderSpec
from llm_retrieval.study import ConfigError, Study
from llm_retrieval.train.dataset import TaskMixture, passage_instructions_for, read_groups

SCHEMA = ROOT / "workflow/schemas/config.schema.yaml"
RECIPES = ROOT / "config/recipes.yaml"
TOLD = "Represent this Python function for retrieval"  # config/recipes.yaml's passage instruction
ID, OOD, INSTRUCTED = (
    "supervised.recipe-instructed.instruction-id",
    "supervised.recipe-instructed.instruction-ood",
    "supervised.recipe-instructed",
)


def _config(edit=None) -> dict:
    config = yaml.safe_load(RECIPES.read_text())
    if edit:
        edit(config)
    validate(config, str(SCHEMA))
    return config


def _contains(seq: list[int], part: list[int]) -> bool:
    return any(seq[i : i + len(part)] == part for i in range(len(seq) - len(part) + 1))


def _sets(config) -> dict:
    return config["collections"]["stdlib-t2c"]["instructions"]


# --- the config model ---------------------------------------------------------------------------------


def test_a_recipe_task_carries_its_passage_instructions_and_a_named_set_its_passage_side():
    config = _config()
    instructed = {t.task: t for t in recipes.recipe(config, "instructed").tasks}
    assert instructed["default"].passage_instructions == (TOLD,)
    assert instructed["c2t"].passage_instructions == ()  # a task without: its passages get none
    encoding = axes.encoding_for(config, ID, "stdlib-t2c")
    assert encoding["instruction"] == _sets(config)["id"]["query"] and encoding["passage_instruction"] == [TOLD]
    query_only = _config(lambda c: _sets(c).update(ood=["Find the code"]))  # the list form: queries only
    assert "passage_instruction" not in axes.encoding_for(query_only, OOD, "stdlib-t2c")


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: _sets(c)["id"].update(passages=[TOLD]),  # a misspelt side
        lambda c: _sets(c).update(id={}),  # neither side
        lambda c: c["recipes"]["instructed"]["tasks"]["default"]["instructions"].update(documents=[TOLD]),
        lambda c: c["recipes"]["instructed"]["tasks"]["default"]["instructions"].update(passage=[]),
    ],
)
def test_the_instruction_schema_stays_closed(edit):
    with pytest.raises(Exception, match="not valid|Additional properties|should be non-empty|is too short"):
        _config(edit)


# --- the family formats -----------------------------------------------------------------------------------


def _bert(tmp_path):
    from llm_retrieval.tiny_models import build_tiny_model

    texts = ["Represent this passage for retrieval", "bread is baked", "what is rye bread", "Instruct: Passage:"] * 20
    build = {"seed": 0, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 1}
    return build_tiny_model("bert", {**build, "num_attention_heads": 2, "vocab_size": 300}, tmp_path / "bert", texts)


def test_bert_passages_carry_the_passage_instruction_at_encoding_and_in_training(tmp_path):
    from llm_retrieval.modeling import load_tokenizer
    from llm_retrieval.train.model import Batcher

    record = _bert(tmp_path)
    tokenizer = load_tokenizer(record["path"])
    told = "Represent this passage for retrieval"
    told_ids = tokenizer(told, add_special_tokens=False)["input_ids"]
    max_length = {"query": 8, "passage": 16}
    spec = EncoderSpec(record, {"passage_instruction": told}, max_length=max_length)
    formatter, budgets = spec.formatter_and_budgets(tokenizer)
    plain, plain_budgets = EncoderSpec(record, {}, max_length=max_length).formatter_and_budgets(tokenizer)
    ids = formatter.token_ids("passage", ["bread is baked"], budgets["passage"])[0]
    assert _contains(ids, told_ids) and ids[0] == tokenizer.cls_token_id and ids[-1] == tokenizer.sep_token_id
    assert budgets == plain_budgets  # the instruction takes nothing from the text's budget
    assert not _contains(plain.token_ids("passage", ["bread is baked"], 16)[0], told_ids)
    query = formatter.token_ids("query", ["what is rye bread"], 8)[0]
    assert query == plain.token_ids("query", ["what is rye bread"], 8)[0]  # queries keep their own format
    batcher = Batcher(tokenizer, max_length, "bert", record["path"])
    trained, mask = batcher.tensors("passage", ["bread is baked", "bread is baked"], [told, None])
    assert trained[0][mask[0].bool()].tolist() == ids  # training formats as encoding does
    assert trained[1][mask[1].bool()].tolist() == plain.token_ids("passage", ["bread is baked"], 16)[0]


def test_a_decoder_passage_gets_its_instruction_before_the_passage_prefix_at_encoding_and_in_training(tmp_path):
    from llm_retrieval.modeling import load_tokenizer
    from llm_retrieval.train.model import Batcher

    task = synthetic_task()
    backbone = tiny_backbone(tmp_path / "backbone", list(task["docs"].values()) + ["Instruct: find it"] * 3)
    tokenizer = load_tokenizer(str(backbone))
    record = {"architecture": "qwen2", "path": str(backbone)}
    max_length = {"query": 16, "passage": 24}
    formatter, _ = EncoderSpec(record, {"passage_instruction": "find it"}, max_length=max_length).formatter_and_budgets(
        tokenizer
    )
    ids = formatter.token_ids("passage", ["the zaaa"], 20)[0]
    decoded = tokenizer.decode(ids)
    assert decoded.startswith("Instruct: find it\nPassage: the zaaa") and decoded.endswith(tokenizer.eos_token)
    batcher = Batcher(tokenizer, max_length)
    trained, mask = batcher.tensors("passage", ["the zaaa", "the zaaa"], ["find it", None])
    assert trained[0][mask[0].bool()].tolist() == ids
    assert tokenizer.decode(trained[1][mask[1].bool()]).startswith("Passage: the zaaa")
    query = tokenizer.decode(formatter.token_ids("query", ["the zaaa"], 12)[0])
    assert query.startswith("Query: the zaaa")  # the passage instruction is the passages' only


def test_a_zero_shot_passage_instruction_opens_the_passage_prompt(tiny_backbones):
    from llm_retrieval.modeling import load_tokenizer

    encoding = yaml.safe_load(RECIPES.read_text())["encoding"]
    record = tiny_backbones["qwen2"]
    tokenizer = load_tokenizer(record["path"])
    told = {**encoding, "passage_instruction": "Represent the document"}
    formatter, _ = EncoderSpec(record, told).formatter_and_budgets(tokenizer)
    passage = tokenizer.decode(formatter.token_ids("passage", ["x"], 8)[0])
    assert "Represent the document\nPassage: " in passage
    assert "Represent the document" not in tokenizer.decode(formatter.token_ids("query", ["x"], 8)[0])


def test_with_several_passage_instructions_each_document_gets_the_one_its_id_chooses(tiny_backbones):
    from llm_retrieval.encoder import Encoder
    from llm_retrieval.prompts import instruction_of_query

    encoding = {**yaml.safe_load(RECIPES.read_text())["encoding"], "passage_instruction": ["first one", "second"]}
    spec = EncoderSpec(tiny_backbones["qwen2"], encoding, max_length={"query": 16, "passage": 24})
    encoder = Encoder(spec, "cpu")
    ids = [f"d{i}" for i in range(12)]
    prepared = encoder.prepare_identified("passage", ["text"] * 12, ids)
    rows = {
        row: seq
        for batch, (tensor, mask) in zip(prepared.batches, prepared.tensors)
        for row, seq in zip(batch, [t[m.bool()].tolist() for t, m in zip(tensor, mask)])
    }
    for row, doc in enumerate(ids):
        chosen = instruction_of_query(["first one", "second"], doc)
        assert encoder.tokenizer.decode(rows[row]).startswith(f"Instruct: {chosen}\nPassage: ")
    assert {instruction_of_query(["first one", "second"], d) for d in ids} == {"first one", "second"}
    assert encoder.shared_prefix("passage") == []  # documents start with different instructions


# --- training batches and resume --------------------------------------------------------------------


def _training_setup(tmp_path):
    from llm_retrieval.modeling import load_tokenizer
    from llm_retrieval.train.model import Batcher

    task = synthetic_task()
    texts = list(task["docs"].values()) + list(task["queries"].values()) + ["Instruct: code it\nPassage:"] * 3
    backbone = tiny_backbone(tmp_path / "backbone", texts)
    groups = read_groups(write_groups(task, tmp_path / "g.parquet", n_neg=3))
    tokenizer = load_tokenizer(str(backbone))
    return backbone, groups, tokenizer, Batcher(tokenizer, {"query": 16, "passage": 24})


@pytest.mark.parametrize("packing", [False, True])
def test_every_passage_of_a_training_group_carries_its_tasks_passage_instruction(tmp_path, packing):
    from llm_retrieval.train.rank import micro_batch

    _, groups, tokenizer, batcher = _training_setup(tmp_path)
    cfg = training_config(packing=packing, per_device_batch=4, global_batch=4, world_size=1, group_size=4)
    batch = TaskMixture([len(groups)], [None], 4, 1, 1, cfg["seed"], max_steps=2).micro_batch(0, 0, 0)
    told = micro_batch(groups, batcher, cfg, batch, "cpu", "test", packing, ("find q",), ("code it", "doc it"))
    plain = micro_batch(groups, batcher, cfg, batch, "cpu", "test", packing, ("find q",))
    if packing:
        rows = [tokenizer.decode(told[0].input_ids[0, a:b]) for a, b in zip(told[0].cu_seqlens, told[0].cu_seqlens[1:])]
        bare = [
            tokenizer.decode(plain[0].input_ids[0, a:b]) for a, b in zip(plain[0].cu_seqlens, plain[0].cu_seqlens[1:])
        ]
        queries, passages, plain_passages = rows[:4], rows[4:], bare[4:]
    else:
        decode = lambda ids, mask: [tokenizer.decode(i[m.bool()]) for i, m in zip(ids, mask)]
        queries, passages, plain_passages = decode(*told[:2]), decode(*told[2:]), decode(*plain[2:])
    assert len(passages) == 4 * 4  # positive and three hard negatives of each of the four groups
    assert all(q.startswith("Instruct: find q\nQuery: ") for q in queries)
    assert all(re.match(r"Instruct: (code it|doc it)\nPassage: ", p) for p in passages)
    assert {p.split("\n")[0] for p in passages} == {"Instruct: code it", "Instruct: doc it"}  # drawn per passage
    assert all(p.startswith("Passage: ") for p in plain_passages)  # a task without passage instructions
    assert [p.split("Passage: ", 1)[1] for p in passages] == [p.split("Passage: ", 1)[1] for p in plain_passages]


def test_passage_instructions_are_a_function_of_the_step_so_a_resumed_run_sees_the_same_ones(tmp_path):
    from llm_retrieval.train.rank import micro_batch

    _, groups, _, batcher = _training_setup(tmp_path)
    cfg = training_config(packing=False, per_device_batch=4, global_batch=8, world_size=1, gradient_accumulation=2)
    told = ("code it", "doc it", "write it")

    def inputs(mixture, step, micro):
        return micro_batch(groups, batcher, cfg, mixture.micro_batch(step, micro, 0), "cpu", "test", False, (), told)

    run = TaskMixture([len(groups)], [None], 4, 2, 1, cfg["seed"], max_steps=20)
    uninterrupted = [inputs(run, s, m) for s in range(20) for m in range(2)]
    resumed = TaskMixture([len(groups)], [None], 4, 2, 1, cfg["seed"], max_steps=20)  # a fresh process at step 12
    again = [inputs(resumed, s, m) for s in range(12, 20) for m in range(2)]
    assert all(torch.equal(a, b) for old, new in zip(uninterrupted[24:], again) for a, b in zip(old, new))
    draws = [passage_instructions_for(told, 7, e, i, 4) for e in range(2) for i in range(30)]
    assert draws == [passage_instructions_for(told, 7, e, i, 4) for e in range(2) for i in range(30)]
    assert {t for d in draws for t in d} == set(told) and passage_instructions_for((), 7, 0, 1, 3) == [None] * 3


@pytest.mark.slow
def test_a_run_with_passage_instructions_resumed_after_a_failure_ends_as_an_uninterrupted_one(tmp_path):
    from safetensors.torch import load_file

    from llm_retrieval.train import checkpoint
    from llm_retrieval.train.driver import launch
    from llm_retrieval.train.job import TrainJob, TrainTask

    backbone, _, _, _ = _training_setup(tmp_path)
    task = synthetic_task()
    tasks = (TrainTask("a", str(write_groups(task, tmp_path / "a.parquet", n_neg=3)), None, (), ("code it", "doc it")),)
    # Two ranks (spawned: one process group each; an in-process rank cannot start a second run).
    training = training_config(max_steps=6, checkpoint_every=3, group_size=2)

    def job(name, fail_at_step=None):
        out = tmp_path / name
        paths = (str(out / "adapter"), str(out / "ckpt"), str(out / "log.json"))
        return TrainJob(str(backbone), "qwen2", tasks, *paths, training, fail_at_step=fail_at_step)

    reference = launch(job("straight"), world_size=2)
    with pytest.raises(Exception, match="injected failure after optimizer step 4"):
        launch(job("resumed", fail_at_step=4), world_size=2)
    assert checkpoint.latest_complete(tmp_path / "resumed/ckpt").name == "step-00000003"
    resumed = launch(job("resumed"), world_size=2)
    assert resumed["resumed_from"] == [3] and resumed["losses"] == pytest.approx(reference["losses"], abs=1e-6)
    a = load_file(str(tmp_path / "straight/adapter/adapter_model.safetensors"))
    b = load_file(str(tmp_path / "resumed/adapter/adapter_model.safetensors"))
    for key in a:
        torch.testing.assert_close(b[key], a[key], rtol=0, atol=1e-6)


# --- the plan: one corpus encoding per distinct passage instruction -----------------------------------


def _corpus_settings(config, collection="stdlib-t2c") -> dict:
    study = Study(config)
    return {s: study.corpus_setting(s, collection) for s in (INSTRUCTED, ID, OOD)}


@pytest.mark.parametrize(
    "edit, expected",
    [
        (None, {INSTRUCTED: INSTRUCTED, ID: ID, OOD: ID}),  # id and ood: one passage side, one encoding
        (lambda c: _sets(c)["ood"].update(passage=["Another"]), {INSTRUCTED: INSTRUCTED, ID: ID, OOD: OOD}),
        (
            lambda c: [s.pop("passage") for s in _sets(c).values()],
            {INSTRUCTED: INSTRUCTED, ID: INSTRUCTED, OOD: INSTRUCTED},
        ),
    ],
)
def test_the_corpus_is_encoded_once_per_distinct_passage_instruction_and_shared_otherwise(edit, expected):
    config = _config(edit)
    assert _corpus_settings(config) == expected
    for setting, owner in expected.items():  # the owner's encoding is what a sharer would have encoded
        own, shared = axes.encoding_for(config, setting, "stdlib-t2c"), axes.encoding_for(config, owner, "stdlib-t2c")
        assert own.get("passage_instruction") == shared.get("passage_instruction")
        assert Study(config).max_length(setting) == Study(config).max_length(owner)
        assert axes.recipe_of(config, setting) == axes.recipe_of(config, owner)
    other = Study(config)
    assert other.corpus_setting("supervised.recipe-multi", "stdlib-t2c") == "supervised.recipe-multi"


def test_the_cost_projection_counts_a_shared_corpus_encoding_once():
    from llm_retrieval.cost_estimate import projection

    rows = {r["setting"]: r for r in projection(_config()).rows if r["stage"] == "encode"}
    assert rows[OOD]["tokens"] == 0 and rows[OOD]["jobs"] == 1  # its queries' job only
    assert rows[ID]["tokens"] == Study(_config()).corpus_size("stdlib-t2c", ID)[1] > 0  # its own corpus encoding


def _dry_run_inputs(output: str) -> dict:
    """(rule, setting) -> input files, of every job a dry run lists."""
    jobs, rule, inputs = {}, None, []
    for line in output.splitlines():
        stripped = line.strip()
        if re.match(r"^(?:local)?rule \w+:$", stripped):
            rule, inputs = stripped.split()[-1].rstrip(":"), []
        elif stripped.startswith("input:"):
            inputs = [p.strip() for p in stripped[len("input:") :].split(",")]
        elif stripped.startswith("wildcards:") and rule:
            wildcards = dict(p.strip().partition("=")[::2] for p in stripped[len("wildcards:") :].split(","))
            jobs[rule, wildcards.get("setting"), wildcards.get("collection")] = inputs
    return jobs


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return scratch_copy(tmp_path_factory.mktemp("recipes-instructions"))


def test_the_recipes_plan_encodes_each_distinct_passage_side_once_and_the_sharers_queries_alone(workdir):
    proc = snakemake(workdir, "-n", "--configfile", "config/recipes.yaml")
    jobs = planned_jobs(proc.stdout)
    t2c = "stdlib-t2c"
    encoded = sorted(w["setting"] for r, w in jobs if r == "encode_queries_and_first_shard" and w["collection"] == t2c)
    assert encoded == sorted(["supervised", "supervised.recipe-c2t", "supervised.recipe-multi", INSTRUCTED, ID])
    assert [(w["setting"], w["collection"]) for r, w in jobs if r == "encode_queries_only"] == [(OOD, t2c)]
    inputs = _dry_run_inputs(proc.stdout)
    own = f"results/embeddings/{ID}/base/{t2c}/corpus/shard-0.parquet"
    assert inputs["dense_search", OOD, t2c] == [f"results/embeddings/{OOD}/base/{t2c}/queries-only.parquet", own]
    assert inputs["dense_search", ID, t2c] == [f"results/embeddings/{ID}/base/{t2c}/queries.parquet", own]


def test_an_unknown_baseline_stops_the_dag_build_naming_the_key(workdir):
    config = _config(
        lambda c: c["settings"]["supervised"]["axes"]["recipe"]["baseline"].update({"stdlib-c2t": "ghost"})
    )
    (workdir / "bad-baseline.yaml").write_text(yaml.safe_dump(config))
    proc = snakemake(workdir, "-n", "--configfile", "bad-baseline.yaml", check=False)
    assert proc.returncode != 0
    assert "settings.supervised.axes.recipe.baseline.stdlib-c2t: unknown recipe 'ghost'" in proc.stdout + proc.stderr


# --- the recipe axis's baseline ---------------------------------------------------------------------------


def _recipe_rows(config, scores):
    from llm_retrieval.report.axis_tables import axis_rows

    study = Study(config)

    def load(setting, backbone, collection, query_set):
        return {"aggregate": {"mrr_10": 0.5, "ndcg_cut_10": scores[axes.recipe_of(config, setting)]}}

    return axis_rows(study, "supervised", "recipe", load)


SCORES = {"default": 0.1, "c2t": 0.3, "multi": 0.6, "instructed": 0.7}


def test_each_delta_is_against_its_collections_baseline_recipe():
    rows = _recipe_rows(_config(), SCORES)  # baseline: {stdlib-c2t: c2t}, the default recipe elsewhere
    for row in rows:
        baseline = "c2t" if row["collection"] == "Code2Docstring" else "default"
        assert row["baseline"] == baseline
        assert row["delta_ndcg_cut_10"] == pytest.approx(SCORES[row["recipe"]] - SCORES[baseline])
    assert len(rows) == 4 * 3


def test_one_baseline_for_the_whole_axis_and_the_list_form_against_the_default_recipe():
    def axis_wide(c):
        c["settings"]["supervised"]["axes"]["recipe"]["baseline"] = "multi"

    rows = _recipe_rows(_config(axis_wide), SCORES)
    assert {r["baseline"] for r in rows} == {"multi"}
    assert all(r["delta_ndcg_cut_10"] == pytest.approx(SCORES[r["recipe"]] - 0.6) for r in rows)
    listed = _config(lambda c: c["settings"]["supervised"]["axes"].update(recipe=["c2t", "multi", "instructed"]))
    assert {r["baseline"] for r in _recipe_rows(listed, SCORES)} == {"default"}

    def no_baseline(c):
        del c["settings"]["supervised"]["axes"]["recipe"]["baseline"]

    assert axes.axis_spec(_config(no_baseline)["settings"]["supervised"]["axes"]["recipe"])["baseline"] == "default"


@pytest.mark.parametrize(
    "baseline, message",
    [
        ("ghost", r"axes.recipe.baseline: unknown recipe 'ghost'"),
        ({"stdlib-c2t": "ghost"}, r"axes.recipe.baseline.stdlib-c2t: unknown recipe 'ghost'"),
        ({"nowhere": "c2t"}, r"axes.recipe.baseline.nowhere: collection 'nowhere' is not among"),
    ],
)
def test_an_unknown_baseline_is_a_config_error_naming_the_key(baseline, message):
    config = _config(lambda c: c["settings"]["supervised"]["axes"]["recipe"].update(baseline=baseline))
    with pytest.raises(ConfigError, match=message):
        Study(config)


def test_a_baseline_must_be_a_recipe_the_axis_evaluates():
    def unevaluated(c):
        c["settings"]["supervised"]["axes"]["recipe"] = {"values": ["multi", "instructed"], "baseline": "c2t"}
        c["settings"]["supervised"]["axes"]["instruction"]["recipes"] = ["instructed"]

    with pytest.raises(ConfigError, match=r"'c2t' is not among settings.supervised.axes.recipe.values"):
        Study(_config(unevaluated))


def test_a_recipe_axis_over_sts_collections_reads_their_spearman_and_its_delta():
    from llm_retrieval.report.axis_tables import axis_measures, axis_rows

    config = yaml.safe_load((ROOT / "config/luo2024.yaml").read_text())
    validate(config, str(SCHEMA))
    study = Study(config)

    def load(setting, backbone, collection, query_set):
        recipe = axes.recipe_of(config, setting)
        if study.collection_kind(collection) == "sts":
            return {"aggregate": {"cosine_spearman": 0.8 if recipe == "single-nli" else 0.5, "cosine_pearson": 0.0}}
        return {"aggregate": {"mrr_10": 0.5, "ndcg_cut_10": 0.4 if recipe == "single-toolbench" else 0.3}}

    rows = axis_rows(study, "supervised", "recipe", load)
    assert axis_measures(study, "supervised", "recipe") == ["mrr_10", "ndcg_cut_10", "cosine_spearman"]
    multi = {(r["backbone"], r["collection"]): r for r in rows if r["recipe"] == "multitask"}
    sts, tool = multi["Llama-2-7B", "STS12"], multi["Llama-2-7B", "ToolLLM"]
    assert sts["baseline"] == "single-nli" and sts["delta_cosine_spearman"] == pytest.approx(-0.3)
    assert "ndcg_cut_10" not in sts  # an STS row has no retrieval measure
    assert tool["baseline"] == "single-toolbench" and tool["delta_ndcg_cut_10"] == pytest.approx(-0.1)
    unmatched = [r for r in rows if r["recipe"] == "instructed" and r["collection"] == "ToolLLM"]
    # The instructed recipe trains backbones the single-task ones do not: there its delta is blank.
    assert any(r["delta_ndcg_cut_10"] == "" for r in unmatched)
