"""Dry-run (DAG build) time of the study configs, an old commit vs this tree, side by side.

    python benchmarks/dag_build.py [--old REV] [--repeat 2] [--backbones 64] [--configs config/config.yaml ...]

For each config (by default the paper config, config/luo2024.yaml where both trees have it, and a
generated 64-backbone version of the paper config: its eight backbones copied under new keys until
there are --backbones of them, every one in both settings), runs ``snakemake -n`` in a git worktree of
the old revision and in this tree, --repeat times each, and prints the best wall time of each, the job
count of each and the ratios old / new; also the CPU time (user + system) of each dry run, steadier
than the wall time on a shared machine. The generated config is written to a temporary folder; the old
tree is a temporary ``git worktree`` removed afterwards. Run it on an idle machine: the times are
wall-clock and include snakemake's own start-up (about 1 s).
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def many_backbones_config(base: Path, count: int, out: Path) -> Path:
    """The paper config with ``count`` backbones (copies of its own under new keys) in every setting."""
    config = yaml.safe_load(base.read_text())
    originals = list(config["backbones"].items())
    backbones = {}
    for i in range(count):
        key, spec = originals[i % len(originals)]
        name = key if i < len(originals) else f"{key}-{i // len(originals)}"
        backbones[name] = {**spec, "label": f"{spec['label']}-{i}" if i >= len(originals) else spec["label"]}
    config["backbones"] = backbones
    for setting in config["settings"].values():
        setting["backbones"] = list(backbones)
    out.write_text(yaml.safe_dump(config, sort_keys=False))
    return out


def dry_run(tree: Path, configfile: Path) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds, planned jobs) of one ``snakemake -n`` of ``tree`` with ``configfile``."""
    env = {**os.environ, "PYTHONPATH": str(tree / "src")}
    command = [sys.executable, "-m", "snakemake", "-n", "--quiet", "rules", "--configfile", str(configfile)]
    cpu_before = _children_cpu()
    start = time.perf_counter()
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - start
    cpu = _children_cpu() - cpu_before
    if done.returncode != 0:
        raise SystemExit(f"snakemake -n failed in {tree} with {configfile}:\n{done.stderr[-3000:]}")
    total = re.search(r"^total\s+(\d+)", done.stdout + done.stderr, re.MULTILINE)
    return seconds, cpu, int(total.group(1)) if total else -1


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def best_of(tree: Path, configfile: Path, repeat: int) -> tuple[float, float, int]:
    """The best wall and the best CPU time of ``repeat`` dry runs (CPU time: steadier on a shared machine)."""
    runs = [dry_run(tree, configfile) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--old", default="cd351a7", help="the revision to compare against (default: before issue 21)")
    parser.add_argument("--repeat", type=int, default=2, help="dry runs per tree and config (the best is shown)")
    parser.add_argument("--backbones", type=int, default=64, help="backbones of the generated paper-config copy")
    parser.add_argument("--configs", nargs="*", default=["config/config.yaml", "config/luo2024.yaml"])
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="dag-build-") as tmp:
        old_tree = Path(tmp) / "old"
        subprocess.run(["git", "worktree", "add", "--detach", "-q", str(old_tree), args.old], cwd=ROOT, check=True)
        try:
            # Each tree's own paper config copied to --backbones backbones (the schema may differ between them).
            generated = many_backbones_config(
                ROOT / "config/config.yaml", args.backbones, Path(tmp) / f"paper-{args.backbones}-backbones.yaml"
            )
            old_generated = many_backbones_config(
                old_tree / "config/config.yaml", args.backbones, Path(tmp) / f"old-paper-{args.backbones}.yaml"
            )
            cases = [(name, ROOT / name) for name in args.configs]
            cases.append((f"paper config, {args.backbones} backbones (generated)", generated))
            print(
                f"{'config':<44} {'wall old':>8} {'new':>6} {'ratio':>6} {'CPU old':>8} {'new':>6} {'ratio':>6}"
                f" {'jobs old':>9} {'new':>6}"
            )
            for label, path in cases:
                if not path.exists():
                    print(f"{label:<44} (not in this tree)")
                    continue
                old_path = old_generated if path == generated else old_tree / path.relative_to(ROOT)
                if not old_path.exists():
                    new_s, new_cpu, new_jobs = best_of(ROOT, path, args.repeat)
                    print(
                        f"{label:<44} {'-':>8} {new_s:6.2f} {'-':>6} {'-':>8} {new_cpu:6.2f} {'-':>6}"
                        f" {'-':>9} {new_jobs:6d}  (not in {args.old})"
                    )
                    continue
                old_s, old_cpu, old_jobs = best_of(old_tree, old_path, args.repeat)
                new_s, new_cpu, new_jobs = best_of(ROOT, path, args.repeat)
                print(
                    f"{label:<44} {old_s:8.2f} {new_s:6.2f} {old_s / new_s:6.2f} {old_cpu:8.2f} {new_cpu:6.2f}"
                    f" {old_cpu / new_cpu:6.2f} {old_jobs:9d} {new_jobs:6d}"
                )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
