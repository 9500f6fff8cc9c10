"""DAG-build speed measures (llm_retrieval.dag_speed, Study's per-pair caches): same answers, computed once.

The speed itself is measured by benchmarks/dag_build.py (old vs new side by side), not here.
"""

import inspect
from pathlib import Path

import yaml
from snakemake.utils import validate

from llm_retrieval import axes
from llm_retrieval.dag_speed import check_each_script_once, memoised, remember_function_signatures
from llm_retrieval.study import Study

ROOT = Path(__file__).resolve().parents[1]


def _study(name="config/axes.yaml"):
    config = yaml.safe_load((ROOT / name).read_text())
    validate(config, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return Study(config)


def test_a_memoised_lookup_runs_once_per_function_and_every_time_for_an_unhashable_callable():
    calls = []

    def lookup(func):
        calls.append(func)
        return inspect.signature(func).parameters

    remembered = memoised(lookup)

    def get_thing(wildcards, attempt):
        return None

    assert list(remembered(get_thing)) == ["wildcards", "attempt"]
    assert list(remembered(get_thing)) == ["wildcards", "attempt"]
    assert calls == [get_thing]

    class Unhashable:
        __hash__ = None

        def __call__(self, wildcards):
            return None

    unhashable = Unhashable()
    assert list(remembered(unhashable)) == ["wildcards"]
    assert list(remembered(unhashable)) == ["wildcards"]
    assert calls == [get_thing, unhashable, unhashable]


def test_snakemake_rules_jobs_and_common_share_the_memoised_signature_lookup():
    import snakemake.common
    import snakemake.jobs
    import snakemake.rules

    remember_function_signatures()
    remember_function_signatures()  # idempotent: not wrapped twice
    shared = snakemake.common.get_function_params
    assert snakemake.rules.get_function_params is shared
    assert snakemake.jobs.get_function_params is shared
    assert not hasattr(shared.__wrapped__, "__wrapped__")

    def get_input(wildcards, input, threads):
        return None

    assert list(shared(get_input)) == ["wildcards", "input", "threads"]
    # Snakemake's own consumer of the lookup still filters the candidate parameters by it.
    aux = snakemake.common.get_input_function_aux_params(get_input, {"input": 1, "output": 2, "threads": 3})
    assert aux == {"input": 1, "threads": 3}


def test_corpus_sizes_and_encodings_are_computed_once_per_pair_and_equal_the_uncached_answer():
    study = _study()
    calls = []
    estimate = study._estimate_corpus_size

    def counting(collection, setting):
        calls.append((collection, setting))
        return estimate(collection, setting)

    study._estimate_corpus_size = counting
    for setting in study.dense_settings():
        for collection in study.collections_of(setting):
            first = study.corpus_size(collection, setting)
            assert study.corpus_size(collection, setting) == first
            assert study.corpus_shards(collection, setting) >= 1
            assert study.encoding(setting, collection) == axes.encoding_for(study.config, setting, collection)
            assert study.encoding(setting, collection) is study.encoding(setting, collection)
    pairs = [(c, s) for s in study.dense_settings() for c in study.collections_of(s)]
    assert calls == pairs
    # A passage-length variant is its own pair: a different encoded size from the setting itself.
    long = next(s for s in study.dense_settings() if "passage_tokens-256" in s)
    assert study.corpus_size("narrativeqa", long)[1] < study.corpus_size("narrativeqa", "zeroshot")[1]


def test_the_dag_build_does_not_import_scipy():
    import subprocess
    import sys

    code = (
        "import sys; import llm_retrieval.report, llm_retrieval.study, llm_retrieval.model_resources; "
        "print('scipy' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"


def test_a_rule_script_without_wildcards_is_checked_once_and_a_missing_one_is_still_an_error(monkeypatch):
    from types import SimpleNamespace

    import snakemake.api  # noqa: F401  (snakemake.dag alone is a circular import)
    from snakemake import dag

    checked = []

    def per_job(self, job):
        checked.append(job.name)
        if job.rule.script == "missing.py":
            raise FileNotFoundError(job.rule.script)

    monkeypatch.setattr(dag.ScriptProcessor, "process_job", per_job)
    check_each_script_once()
    check_each_script_once()  # idempotent
    processor = dag.ScriptProcessor.__new__(dag.ScriptProcessor)

    def job(name, rule, script):
        return SimpleNamespace(name=name, is_script=True, rule=SimpleNamespace(name=rule, script=script))

    for name in ("a1", "a2", "a3"):
        processor.process_job(job(name, "encode", "../scripts/encode.py"))
    for name in ("w1", "w2"):
        processor.process_job(job(name, "per_wildcard", "../scripts/{wildcards.kind}.py"))
    processor.process_job(SimpleNamespace(name="shell", is_script=False, rule=SimpleNamespace(name="s", script=None)))
    for name in ("m1", "m2"):
        try:
            processor.process_job(job(name, "broken", "missing.py"))
        except FileNotFoundError:
            pass
        else:
            raise AssertionError("a missing script must stay an error")
    assert checked == ["a1", "w1", "w2", "shell", "m1", "m2"]


def test_a_config_edited_after_a_lookup_is_not_answered_from_the_cache():
    study = _study()
    assert "bert-base" in study.backbones_of("supervised")
    before = study.corpus_size("fiqa", "zeroshot")
    study.config["settings"]["supervised"]["backbones"] = ["base"]
    study.collections["fiqa"]["size_estimate"] = {"documents": 10, "mean_tokens": 5}
    assert study.backbones_of("supervised") == ["base"]
    assert study.corpus_size("fiqa", "zeroshot")[0] == 10 != before[0]
