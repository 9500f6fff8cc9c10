"""DAG-build speed measures (llm_retrieval.dag_speed, Study's per-pair caches): same answers, computed once.

The speed itself is measured by benchmarks/dag_build.py (old vs new side by side), not here.
"""

import asyncio
import inspect
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import yaml
from snakemake.utils import validate

from llm_retrieval import axes, dag_speed
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


def test_the_patches_are_written_against_the_snakemake_that_requirements_pin():
    pins = dict(
        line.split("#")[0].strip().split("==")
        for line in (ROOT / "requirements.txt").read_text().splitlines()
        if "==" in line.split("#")[0]
    )
    assert pins["snakemake"] == dag_speed.PINNED


def test_on_another_snakemake_version_no_patch_is_installed_and_a_warning_says_so():
    code = (
        "import logging, snakemake.jobs as jobs, snakemake.io.fmt as fmt\n"
        "from llm_retrieval import dag_speed\n"
        "logging.basicConfig()\n"
        "before = (jobs.Job.output_mintime, jobs.Job.conda_env_spec, fmt.fmt_iofile)\n"
        "assert dag_speed.install('9.0.0') is False\n"
        "assert (jobs.Job.output_mintime, jobs.Job.conda_env_spec, fmt.fmt_iofile) == before\n"
        "assert dag_speed.install(dag_speed.PINNED) is True\n"
        "assert jobs.Job.output_mintime is not before[0] and fmt.fmt_iofile is not before[2]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert "snakemake 9.0.0 is not the pinned" in done.stderr


SNAKEFILE = """
from llm_retrieval import dag_speed

if config["patched"]:
    dag_speed.install()


def counted_name(wildcards):
    with open("params-evaluated.txt", "a") as out:
        out.write(wildcards.name + "\\n")
    return wildcards.name


rule all:
    input:
        expand("out/{name}.txt", name=["a", "b", "c"]),


rule make:
    output:
        "out/{name}.txt",
    conda:
        "env.yaml"
    params:
        name=counted_name,
    script:
        "write.py"
"""


def _params_workflow(tmp_path):
    tmp_path.mkdir()
    (tmp_path / "Snakefile").write_text(SNAKEFILE)
    (tmp_path / "env.yaml").write_text("channels: [conda-forge]\ndependencies: [python]\n")
    (tmp_path / "write.py").write_text("open(snakemake.output[0], 'w').write(snakemake.params.name)\n")
    return tmp_path


def _snakemake(workdir, *args):
    command = [sys.executable, "-m", "snakemake", "--cores", "1", *args]
    done = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_a_dry_run_evaluates_the_params_of_one_job_per_rule_not_of_every_job_and_a_run_still_gets_them(tmp_path):
    unpatched = _params_workflow(tmp_path / "unpatched")
    _snakemake(unpatched, "-n", "--config", "patched=False")
    # Snakemake's own dry run evaluates every job's params (for its conda env and script path, which ignore them)
    assert sorted((unpatched / "params-evaluated.txt").read_text().split()) == ["a", "b", "c"]
    patched = _params_workflow(tmp_path / "patched")
    _snakemake(patched, "-n", "--config", "patched=True")
    # the one left: the rule's script check (check_each_script_once) reads its first job's params
    assert len((patched / "params-evaluated.txt").read_text().split()) == 1
    _snakemake(patched, "--config", "patched=True")
    assert [(patched / f"out/{n}.txt").read_text() for n in "abc"] == ["a", "b", "c"]


def test_a_file_without_flags_is_printed_as_its_path_and_a_flagged_one_as_snakemake_prints_it():
    from snakemake.io import IOFile, directory, pipe, temp
    from snakemake.io import fmt as fmt_module

    dag_speed.plain_files_printed_plainly()
    dag_speed.plain_files_printed_plainly()  # idempotent
    printed, snakemakes = fmt_module.fmt_iofile, fmt_module.fmt_iofile.__wrapped__
    assert not hasattr(snakemakes, "__wrapped__")
    files = [IOFile("results/a.txt"), IOFile(temp("t.txt")), IOFile(directory("d")), IOFile(pipe("p")), "plain"]
    for f in files:
        for where in ({"as_input": True}, {"as_output": True}, {}):
            assert printed(f, **where) == snakemakes(f, **where)
    assert printed(IOFile(pipe("p")), as_output=True) == "p (pipe)"


class _File:
    def __init__(self, mtime=None, storage=False):
        self.mtime_, self.is_storage = mtime, storage

    async def exists(self):
        return self.mtime_ is not None

    async def mtime(self):
        return SimpleNamespace(local_or_storage=lambda: self.mtime_)


def test_the_oldest_output_time_read_file_by_file_equals_snakemakes_concurrent_answer():
    from snakemake import jobs

    dag_speed.local_output_times_in_turn()
    dag_speed.local_output_times_in_turn()  # idempotent
    in_turn, concurrent = jobs.Job.output_mintime.fget, jobs.Job.output_mintime.fget.__wrapped__
    assert not hasattr(concurrent, "__wrapped__")
    cases = [
        ([_File(5.0), _File(3.0), _File(None)], None),
        ([_File(5.0), _File(3.0)], _File(2.0)),
        ([_File(5.0)], _File(9.0)),
        ([_File(None)], _File(None)),
        ([_File(None)], _File(4.0)),
        ([], None),
        ([_File(7.0, storage=True), _File(1.0)], None),
    ]
    for output, benchmark in cases:
        job = SimpleNamespace(output=output, benchmark=benchmark)
        assert asyncio.run(in_turn(job)) == asyncio.run(concurrent(job)), (output, benchmark)
    assert re.search("asyncio task", inspect.getdoc(dag_speed.local_output_times_in_turn))


def test_nested_paths_are_found_by_their_components_as_commonpath_compares_them():
    assert not dag_speed.has_nested_paths(["results/a/x.txt", "results/a/y.txt", "results/ab"], "/w")
    assert dag_speed.has_nested_paths(["results/a", "results/a/x.txt"], "/w")
    assert dag_speed.has_nested_paths(["results/./a", "/w/results/a/x/y.txt"], "/w")  # made absolute, '.' dropped
    assert not dag_speed.has_nested_paths(["results/a", "/w/results/a"], "/w")  # the same path twice: not nested
    assert not dag_speed.has_nested_paths(["results/a/b", "results/ab/c"], "/w")  # a prefix of the name only
    assert dag_speed.path_parts("x//y/./z", "/w") == ("w", "x", "y", "z")


NESTED_SNAKEFILE = """
from llm_retrieval import dag_speed

dag_speed.install()


rule all:
    input:
        "out/folder",
        "out/folder/inside.txt",


rule folder:
    output:
        directory("out/folder"),
    shell:
        "mkdir -p {output}"


rule inside:
    output:
        "out/folder/inside.txt",
    shell:
        "touch {output}"
"""


def test_an_output_inside_another_jobs_output_folder_is_still_snakemakes_error(tmp_path):
    (tmp_path / "Snakefile").write_text(NESTED_SNAKEFILE)
    (tmp_path / "flat").mkdir()
    (tmp_path / "flat/Snakefile").write_text(NESTED_SNAKEFILE.replace("out/folder/inside.txt", "out/beside.txt"))
    command = [sys.executable, "-m", "snakemake", "-n", "--cores", "1"]
    nested = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, check=False, timeout=300)
    assert nested.returncode != 0 and "ChildIOException" in nested.stdout + nested.stderr
    flat = subprocess.run(command, cwd=tmp_path / "flat", capture_output=True, text=True, check=False, timeout=300)
    assert flat.returncode == 0, flat.stderr[-2000:]


def test_the_planning_process_collects_garbage_less_often_and_not_at_exit_and_a_higher_setting_is_kept():
    code = (
        "import atexit, gc\n"
        "from llm_retrieval import dag_speed\n"
        "gc.set_threshold(700, 10, 10)\n"
        "registered = []\n"
        "atexit.register = lambda f: registered.append(f)\n"
        "assert gc.get_freeze_count() == 0\n"
        "dag_speed.install('9.0.0')\n"  # on any version: no Snakemake internals involved
        "frozen = gc.get_freeze_count()\n"
        "assert frozen > 0\n"  # what exists at the start is never examined again
        "dag_speed.fewer_garbage_collections()\n"  # idempotent
        "assert gc.get_freeze_count() == frozen\n"
        "assert gc.get_threshold() == (dag_speed.GC_YOUNG_THRESHOLD, 10, 10), gc.get_threshold()\n"
        "assert registered == [gc.freeze], registered\n"
        "gc.set_threshold(10**6, 5, 5)\n"
        "dag_speed.fewer_garbage_collections()\n"
        "assert gc.get_threshold() == (10**6, 5, 5)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
