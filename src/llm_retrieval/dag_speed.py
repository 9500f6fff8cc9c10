"""DAG-build speed: Snakemake's per-job cost of our input functions, params and resources.

Snakemake asks for the signature of every input function, params callable and resource callable each
time it applies one, that is several times per job (``inspect.signature``: about a tenth of a dry run
of the paper config with 64 backbones, benchmarks/dag_build.py). A function's signature does not
change, so :func:`remember_function_signatures` makes Snakemake look each one up once. It replaces
``get_function_params`` in the Snakemake modules that call it with a memoised copy (keyed by the
function object; a callable that cannot be a dictionary key is looked up every time, as before).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

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
