"""Every rule's resources at every retry attempt, as the Slurm executor would submit them, tried now.

The workflow side (workflow/rules/preflight.smk) evaluates each rule's resources with Snakemake's own
``Rule.expand_resources`` for attempts 1..retries+1 and every backbone / collection of the config
(:func:`expand_rules`). Here each request becomes the sbatch line of snakemake-executor-plugin-slurm
(its ``get_submit_command`` and ``set_gres_string``, so the line is the plugin's, not a copy of it) and is
tried with ``sbatch --test-only``. ``--test-only`` refuses what no node can hold (GPUs, memory, an
unknown partition or account) but accepts a time limit above the partition's MaxTime when the cluster
does not set ``EnforcePartLimits`` (the job would then wait forever, "PartitionTimeLimit"), so the
partition's own limits (``scontrol show partition``) are compared as well.
"""

from __future__ import annotations

import itertools
import re
import shlex
import shutil
import subprocess
from types import SimpleNamespace

from . import Check, failed, passed, skipped

# Wildcards whose values change a rule's resources; any other wildcard gets a placeholder value.
SIZING_WILDCARDS = ("backbone", "collection")
PLACEHOLDER = "0"
# Parts of the plugin's line that say nothing about resources (left out of the report's lines).
BOILERPLATE = re.compile(r"^(--parsable|--job-name|--output|--export=ALL|--comment|-D|--requeue|--no-requeue)")


def expand_rules(rules, wildcards_of, empty_input, values: dict[str, list[str]], attempts: int) -> list[dict]:
    """[{rule, attempt, wildcards, threads, resources}] for every non-local rule (Snakemake ``Rule``
    objects), attempt and combination of the sizing wildcards' ``values``; a rule whose resources cannot
    be evaluated gets an ``error`` instead of resources."""
    out = []
    for rule in rules:
        names = sorted(rule.wildcard_names)
        choices = [values.get(n, [PLACEHOLDER]) if n in SIZING_WILDCARDS else [PLACEHOLDER] for n in names]
        for attempt in range(1, attempts + 1):
            for combo in itertools.product(*choices):
                wildcards = dict(zip(names, combo))
                entry = {"rule": rule.name, "attempt": attempt, "wildcards": wildcards}
                try:
                    res = rule.expand_resources(wildcards_of(wildcards), empty_input, attempt)
                except Exception as err:  # noqa: BLE001 - reported as a failed check
                    entry["error"] = f"{type(err).__name__}: {err}"
                else:
                    entry["threads"] = int(res["_cores"])
                    entry["resources"] = {k: _plain(v) for k, v in res.items() if not k.startswith("_")}
                out.append(entry)
    return out


def _plain(value):
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else str(value)


class _Resources(dict):
    """A job's resources as the plugin reads them: ``.get(key)`` and attribute access."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class SubmitJob:
    """What the plugin's submit-string functions read of a job."""

    def __init__(self, name: str, threads: int, resources: dict):
        self.name, self.threads, self.resources = name, threads, _Resources(resources)

    def is_group(self) -> bool:
        return False


def sbatch_line(entry: dict, default_partition: str | None, requeue: bool, workdir: str) -> str:
    """The plugin's sbatch line for one request (account and partition as the plugin spells them)."""
    from snakemake_executor_plugin_slurm.submit_string import get_submit_command
    from snakemake_executor_plugin_slurm.utils import set_gres_string

    job = SubmitJob(entry["rule"], entry["threads"], entry["resources"])
    res = job.resources
    account = f" -A {shlex.quote(str(res['slurm_account']))}" if res.get("slurm_account") else ""
    partition = res.get("slurm_partition") or default_partition
    params = {
        "run_uuid": "preflight",
        "slurm_logfile": "/dev/null",
        "comment_str": f"rule_{entry['rule']}",
        "account": account,
        "partition": f" -p {shlex.quote(str(partition))}" if partition else "",
        "workdir": workdir,
    }
    settings = SimpleNamespace(requeue=requeue, no_requeue=False, qos=None, reservation=None)
    return get_submit_command(job, params, settings=settings) + set_gres_string(job)


def summary(line: str) -> str:
    """The resource part of an sbatch line."""
    words = shlex.split(line)[1:]
    kept, skip_next = [], False
    for word in words:
        if skip_next:
            skip_next = False
            continue
        if BOILERPLATE.match(word):
            skip_next = word in ("--job-name", "--output", "--comment", "-D")
            continue
        kept.append(word)
    return " ".join(kept)


# --- the scheduler's answer -----------------------------------------------------------


def minutes(slurm_time: str) -> float | None:
    """Slurm's time format ([days-]hours:minutes:seconds, minutes, ...) in minutes; None for UNLIMITED."""
    if slurm_time in ("UNLIMITED", "INFINITE", "NONE", ""):
        return None
    days, _, rest = slurm_time.rpartition("-")
    parts = [float(p) for p in rest.split(":")]
    if len(parts) == 1:
        h, m, s = 0.0, parts[0], 0.0
    elif len(parts) == 2:
        h, m, s = 0.0, parts[0], parts[1]
    else:
        h, m, s = parts[-3:]
    return (float(days) if days else 0.0) * 1440 + h * 60 + m + s / 60


def partitions(scontrol_output: str) -> dict[str, dict]:
    """{partition: {max_minutes, max_mem_mb, max_nodes, default}} from ``scontrol show partition -o``."""
    out = {}
    for line in scontrol_output.splitlines():
        fields = dict(re.findall(r"(\w+)=(\S*)", line))
        if "PartitionName" not in fields:
            continue
        mem = fields.get("MaxMemPerNode", "UNLIMITED")
        nodes = fields.get("MaxNodes", "UNLIMITED")
        out[fields["PartitionName"]] = {
            "max_minutes": minutes(fields.get("MaxTime", "UNLIMITED")),
            "max_mem_mb": int(mem) if mem.isdigit() else None,
            "max_nodes": int(nodes) if nodes.isdigit() else None,
            "default": fields.get("Default") == "YES",
        }
    return out


def over_limits(entry: dict, limits: dict | None, partition: str) -> list[str]:
    """What in one request exceeds its partition's limits, each with the setting that fixes it."""
    if limits is None:
        return []
    res, problems = entry["resources"], []
    kind = "gpu" if res.get("gpu") or "gpu" in str(res.get("gres", "")) else "cpu"
    if limits["max_minutes"] is not None and res.get("runtime", 0) > limits["max_minutes"]:
        problems.append(
            f"asks -t {res['runtime']} min, partition {partition} allows {limits['max_minutes']:g} min (MaxTime): "
            f"set slurm.max_runtime: {int(limits['max_minutes'])} (or slurm.partitions.{kind}: a partition with "
            f"a longer limit)"
        )
    if limits["max_mem_mb"] is not None and res.get("mem_mb", 0) > limits["max_mem_mb"]:
        problems.append(
            f"asks --mem {res['mem_mb']} MB, partition {partition} allows {limits['max_mem_mb']} MB per node "
            f"(MaxMemPerNode): set slurm.max_mem_mb: {limits['max_mem_mb']}"
        )
    if limits["max_nodes"] is not None and res.get("nodes", 1) > limits["max_nodes"]:
        problems.append(
            f"asks {res['nodes']} nodes, partition {partition} allows {limits['max_nodes']} (MaxNodes): lower "
            f"training.world_size or raise slurm.gpus_per_node to the node's GPU count"
        )
    return problems


def test_only(line: str) -> tuple[bool, str]:
    """(accepted, sbatch's message) for ``line`` with ``--test-only``."""
    proc = subprocess.run(
        f"{line} --test-only --wrap=true", shell=True, capture_output=True, text=True, timeout=60, check=False
    )
    message = (proc.stderr.strip() or proc.stdout.strip()).splitlines()
    return proc.returncode == 0, (message[-1] if message else f"exit {proc.returncode}")[:300]


def check_requests(
    entries: list[dict], requeue: bool, workdir: str, local_run: bool = False, scheduler=None
) -> list[Check]:
    """One Check per (rule, attempt): ✔ when every wildcard combination's request is accepted."""
    if local_run or (shutil.which("sbatch") is None and scheduler is None):
        why = "this run executes its jobs here (--cores)" if local_run else "no sbatch on this machine"
        return [
            skipped(
                "job resources at every retry attempt",
                f"{why}: run `snakemake --profile slurm preflight` on the cluster's login node to try "
                "every job's request against the scheduler",
            )
        ]
    scheduler = scheduler or Scheduler()
    limits = partitions(scheduler.partitions())
    default = next((name for name, p in limits.items() if p["default"]), None)
    tried: dict[str, tuple[bool, str]] = {}
    checks = []
    for (rule, attempt), group in itertools.groupby(entries, key=lambda e: (e["rule"], e["attempt"])):
        checks.append(
            _check_one(
                f"resources of {rule}, attempt {attempt}",
                list(group),
                limits,
                default,
                requeue,
                workdir,
                scheduler,
                tried,
            )
        )
    return checks


def _check_one(name, group, limits, default, requeue, workdir, scheduler, tried) -> Check:
    shown = None
    for entry in group:
        where = ", ".join(f"{k}={v}" for k, v in entry["wildcards"].items() if v != PLACEHOLDER)
        where = f" ({where})" if where else ""
        if "error" in entry:
            return failed(name, f"resources not evaluable{where}: {entry['error']}", "fix the rule's resources")
        line = sbatch_line(entry, default, requeue, workdir)
        partition = entry["resources"].get("slurm_partition") or default
        problems = over_limits(entry, limits.get(partition), partition)
        if problems:
            return failed(name, f"{summary(line)}{where}", "; ".join(problems))
        if line not in tried:
            tried[line] = scheduler.test_only(line)
        accepted, message = tried[line]
        if not accepted:
            return failed(
                name,
                f"{summary(line)}{where} refused: {message}",
                "change the slurm: settings this request comes from (docs/slurm.md)",
            )
        shown = shown or summary(line)
    return passed(
        name, f"{shown} accepted by sbatch --test-only" + (f" (and {len(group) - 1} more)" if len(group) > 1 else "")
    )


class Scheduler:
    """The two scheduler questions, behind one object so that tests can answer them."""

    def partitions(self) -> str:
        return subprocess.run(
            ["scontrol", "show", "partition", "-o"], capture_output=True, text=True, timeout=60, check=False
        ).stdout

    def test_only(self, line: str) -> tuple[bool, str]:
        return test_only(line)
