"""DAG-build speed: Snakemake's per-job work that our workflow does not need, done once or not at all.

A dry run of a large study is mostly Snakemake's per-job work (luo2024: 5,385 jobs, about 0.7 ms each
after these measures, 1.7 ms before; benchmarks/dag_build.py, docs/measurements.md); our input functions,
params and resources are a few per cent of it. Each patch below removes one piece of that work whose
answer cannot differ (the dry runs of the shipped configs list the same jobs, files, reasons and
resources with and without them), and is installed only on the Snakemake version it was written
against (:data:`PINNED`, requirements.txt): on another one :func:`install` leaves Snakemake as it is
and says so, since the patched internals may have changed.

- :func:`remember_function_signatures`: the signature of every input function, params and resource
  callable is looked up once, not several times per job (``inspect.signature``).
- :func:`check_each_script_once`: a rule's ``script:`` without wildcards is checked to exist once per
  rule, not once per job.
- :func:`params_only_when_used`: a job's params are evaluated when something uses them (the job's
  run, the params-changed rerun trigger, the script check of a rule's first job), not to expand a
  conda env given as a path or a script path without ``{...}``, which ignore them. A params function
  that raises for some jobs only is then reported when such a job runs, no longer by the dry run.
- :func:`plain_files_printed_plainly`: the dry run prints a file without flags as its path without
  asking it for each of the seven flags the printer knows.
- :func:`local_output_times_in_turn`: a job's oldest output time is read file by file when its files
  are local (answered from Snakemake's file inventory), not through one asyncio task per file.
- :func:`nested_outputs_looked_up`: the check that no output lies inside another job's output folder
  first looks each output's parent folders up among the outputs (a set), and sorts every output path
  only when one is found, to raise Snakemake's own error.

And one that is no patch, installed on any version: :func:`fewer_garbage_collections`.
"""

from __future__ import annotations

import atexit
import gc
import importlib
import logging
from collections.abc import Callable
from typing import Any

PINNED = "9.27.1"  # the snakemake of requirements.txt: the version these patches were written against
# Net allocations between two collections of the youngest generation (Python's default: 700).
GC_YOUNG_THRESHOLD = 50_000
log = logging.getLogger(__name__)

# The Snakemake modules that import get_function_params by name (snakemake 9: common itself,
# for get_input_function_aux_params; rules and jobs).
CALLERS = ("snakemake.common", "snakemake.rules", "snakemake.jobs")


def memoised(lookup: Callable[[Callable], Any]) -> Callable[[Callable], Any]:
    """``lookup(func)`` computed once per function object."""
    known: dict[Callable, Any] = {}

    def remembered(func: Callable) -> Any:
        try:
            return known[func]
        except KeyError:
            known[func] = found = lookup(func)
            return found
        except TypeError:  # an unhashable callable: no cache
            return lookup(func)

    remembered.__wrapped__ = lookup
    return remembered


def remember_function_signatures() -> None:
    """Make Snakemake look up each function's parameters once (idempotent)."""
    common = importlib.import_module(CALLERS[0])
    if hasattr(common.get_function_params, "__wrapped__"):
        return
    shared = memoised(common.get_function_params)
    for name in CALLERS:
        module = importlib.import_module(name)
        if getattr(module, "get_function_params", None) is shared.__wrapped__:
            module.get_function_params = shared


def check_each_script_once() -> None:
    """Make Snakemake check a rule's ``script:`` file once per rule, not once per job (idempotent).

    At DAG build Snakemake opens and reads every job's script through its source cache to check that
    it exists (``dag.ScriptProcessor``): about a tenth of a large dry run. A script path without
    wildcards is the same file for every job of its rule, so the first job's check stands for all
    of them; a path with ``{...}`` in it is still checked for every job.
    """
    import snakemake.api  # noqa: F401  (imports snakemake.dag without its circular import)
    from snakemake import dag

    processor = dag.ScriptProcessor
    if getattr(processor.process_job, "checks_each_script_once", False):
        return
    per_job = processor.process_job

    def process_job(self, job) -> None:
        entry = getattr(job.rule, self.script_type, None) if getattr(job, f"is_{self.script_type}", False) else None
        if entry is None or "{" in str(entry):
            return per_job(self, job)
        checked = self.__dict__.setdefault("_checked_rules", set())
        if job.rule.name not in checked:
            per_job(self, job)  # raises when the script is missing: the rule is then not marked checked
            checked.add(job.rule.name)
        return None

    process_job.checks_each_script_once = True
    process_job.__wrapped__ = per_job
    processor.process_job = process_job


def params_only_when_used() -> None:
    """Evaluate a job's params only where they are used (idempotent).

    Snakemake evaluates them for every job at DAG build to pass them to ``Rule.expand_conda_env`` and to
    ``format`` the script path, which ignore them for a conda env that is not a function and a script
    path without ``{...}``: about a fifteenth of a large dry run.
    """
    from snakemake import jobs
    from snakemake.sourcecache import LocalSourceFile, infer_source_file

    job = jobs.Job
    if getattr(job._path_to_source_file, "params_only_when_used", False):
        return
    conda_env_spec = job.conda_env_spec.fget
    path_to_source_file = job._path_to_source_file

    def plain_conda_env_spec(self):
        if callable(self.rule._conda_env):  # a function of the params: Snakemake's own
            return conda_env_spec(self)
        if self._conda_env_spec is None:
            self._conda_env_spec = self.rule.expand_conda_env(self.wildcards_dict)
        return self._conda_env_spec

    def plain_path_to_source_file(self, path):
        if "{" in str(path) or "}" in str(path):
            return path_to_source_file(self, path)
        path = infer_source_file(str(path))  # what Snakemake does after formatting, for a path it leaves as is
        if isinstance(path, LocalSourceFile) and self.rule.basedir:
            path = self.rule.basedir.join(path)
        return path

    plain_path_to_source_file.params_only_when_used = True
    plain_path_to_source_file.__wrapped__ = path_to_source_file
    plain_conda_env_spec.__wrapped__ = conda_env_spec
    job.conda_env_spec = property(plain_conda_env_spec)
    job._path_to_source_file = plain_path_to_source_file


def plain_files_printed_plainly() -> None:
    """The dry run's job printer: a file without flags is its path (idempotent).

    ``fmt_iofile`` asks every file for its storage flag and up to seven others before it prints it; for
    a file with no flags at all every answer is no and the result is the path itself.
    """
    from snakemake import dag, jobs
    from snakemake.io import _IOFile
    from snakemake.io import fmt as fmt_module

    if getattr(fmt_module.fmt_iofile, "__wrapped__", None):
        return
    flagged = fmt_module.fmt_iofile

    def fmt_iofile(f, as_input: bool = False, as_output: bool = False) -> str:
        if isinstance(f, _IOFile) and not f.flags:
            return f"{f}"
        return flagged(f, as_input=as_input, as_output=as_output)

    fmt_iofile.__wrapped__ = flagged
    for module in (fmt_module, jobs, dag):
        if getattr(module, "fmt_iofile", None) is flagged:
            module.fmt_iofile = fmt_iofile


def local_output_times_in_turn() -> None:
    """A job's oldest output time, file by file when no output or benchmark is in storage (idempotent).

    Snakemake gathers the times of a job's outputs with one asyncio task each, for every job at DAG
    build; a local file's existence and time come from its inventory (``IOCache``), so the tasks only
    add their own cost (about a twentieth of a large dry run). Storage files keep the concurrent reads.
    """
    from snakemake import jobs

    job = jobs.Job
    concurrent = job.output_mintime.fget
    if getattr(concurrent, "__wrapped__", None):
        return

    async def output_mintime(self):
        benchmark = self.benchmark
        if any(f.is_storage for f in self.output) or (benchmark and benchmark.is_storage):
            return await concurrent(self)
        times = [(await f.mtime()).local_or_storage() for f in self.output if await f.exists()]
        oldest = min(times) if times else None
        if benchmark and await benchmark.exists():
            of_benchmark = (await benchmark.mtime()).local_or_storage()
            return of_benchmark if oldest is None else min(oldest, of_benchmark)
        return oldest

    output_mintime.__wrapped__ = concurrent
    job.output_mintime = property(output_mintime)


def path_parts(path: str, cwd: str) -> tuple[str, ...]:
    """The components ``os.path.commonpath`` compares, of ``path`` made absolute as ``Path.absolute`` does
    (no ``..`` resolved): empty and ``.`` components dropped."""
    absolute = path if path.startswith("/") else f"{cwd}/{path}"
    return tuple(part for part in absolute.split("/") if part and part != ".")


def has_nested_paths(paths, cwd: str) -> bool:
    """True when one of ``paths`` lies inside another (one's components begin with the other's)."""
    parts = {path_parts(str(p), cwd) for p in paths}
    return any(each[:n] in parts for each in parts for n in range(1, len(each)))


def nested_outputs_looked_up() -> None:
    """``DAG.check_directory_outputs`` sorts only when an output lies inside another (idempotent).

    Snakemake sorts every output's absolute path with its job and compares neighbours, for every plan:
    about a fifteenth of a large dry run. It can only raise when some output lies inside another one,
    which a set of path components answers; only then is Snakemake's own check run (and its error raised).
    """
    import os

    import snakemake.api  # noqa: F401  (imports snakemake.dag without its circular import)
    from snakemake import dag

    sorting = dag.DAG.check_directory_outputs
    if getattr(sorting, "__wrapped__", None):
        return

    def check_directory_outputs(self):
        if has_nested_paths((f for job in self.jobs for f in job.output), os.getcwd()):
            return sorting(self)
        return None

    check_directory_outputs.__wrapped__ = sorting
    dag.DAG.check_directory_outputs = check_directory_outputs


def fewer_garbage_collections() -> None:
    """Collect cyclic garbage after every GC_YOUNG_THRESHOLD net allocations, not 700 (never lowers it),
    never over what exists when it is called (Snakemake's and the workflow's modules), and not at all
    once the interpreter exits (idempotent).

    Planning allocates millions of objects that live until the end (jobs, files, name lists); with
    Python's default the collector runs about 1,400 times in luo2024's dry run, 9 of them over every
    object: a quarter of its CPU time; after this, about 15 times and never over the oldest generation.
    At exit the interpreter then collected over all of them again (1.6 s of luo2024's dry run, after the
    plan was printed): ``gc.freeze`` at exit (an ``atexit`` handler) leaves them to the process's end.
    Garbage without cycles is freed at once as before; cycles wait a little longer (a few MB at most),
    and one among the objects frozen at the start is never collected.
    """
    young, *older = gc.get_threshold()
    if young < GC_YOUNG_THRESHOLD:
        gc.set_threshold(GC_YOUNG_THRESHOLD, *older)
    if not getattr(fewer_garbage_collections, "freezes_at_exit", False):
        gc.freeze()  # the imported modules and the parsed workflow: never examined again
        atexit.register(gc.freeze)
        fewer_garbage_collections.freezes_at_exit = True


PATCHES = (
    remember_function_signatures,
    check_each_script_once,
    params_only_when_used,
    plain_files_printed_plainly,
    local_output_times_in_turn,
    nested_outputs_looked_up,
)


def install(version: str | None = None) -> bool:
    """Apply every patch when Snakemake is the pinned version; True when applied (idempotent). The
    garbage-collection setting is applied on any version."""
    fewer_garbage_collections()
    if version is None:
        import snakemake

        version = snakemake.__version__
    if version != PINNED:
        log.warning(
            "llm_retrieval.dag_speed: snakemake %s is not the pinned %s; its DAG-build patches are left out "
            "(the plan is the same, only slower): check them against this version and update PINNED",
            version,
            PINNED,
        )
        return False
    for patch in PATCHES:
        patch()
    return True
