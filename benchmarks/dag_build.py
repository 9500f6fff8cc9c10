"""Dry-run (DAG build) time of the study configs, an old commit vs this tree, side by side.

    python benchmarks/dag_build.py [--old REV] [--repeat 2] [--backbones 64] [--configs config/config.yaml ...]

For each config (by default the paper config, config/luo2024.yaml where both trees have it, and a
generated 64-backbone version of the paper config: its eight backbones copied under new keys until
there are --backbones of them, every one in both settings), runs ``snakemake -n`` in a git worktree of
the old revision (default: where this branch left main) and in this tree, --repeat times each,
alternating old and new, and prints the best wall time of each, the job count of each and the ratios
old / new; also the CPU time (user + system) of each dry run, steadier than the wall time on a shared
machine, and the load average before and after. The generated config is written to a temporary folder;
the old tree is a temporary ``git worktree`` removed afterwards. Neither tree has a ``data/`` folder (a
fresh clone): a tree that cannot plan without ToolBench's and QReCC's hand-fetched files gets empty
stand-ins for them first (the plan only needs them present). Run it on an idle machine: the times are
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
    missing_input = "MissingInputException" in done.stdout + done.stderr
    if done.returncode != 0 and missing_input and stand_in_local_data(tree, configfile):
        return dry_run(tree, configfile)  # an older tree: its plan needs the hand-fetched files present
    if done.returncode != 0:
        raise SystemExit(f"snakemake -n failed in {tree} with {configfile}:\n{(done.stdout + done.stderr)[-3000:]}")
    total = re.search(r"^total\s+(\d+)", done.stdout + done.stderr, re.MULTILINE)
    return seconds, cpu, int(total.group(1)) if total else -1


def stand_in_local_data(tree: Path, configfile: Path) -> bool:
    """Empty stand-ins for the missing hand-fetched files (ToolBench's folder, QReCC's turns and passages)
    of ``configfile`` in ``tree``; True when it made any."""
    made = False
    for collection in yaml.safe_load(configfile.read_text()).get("collections", {}).values():
        source = collection.get("source", {})
        folders = [source.get("path")] if source.get("type") == "toolbench" else []
        folders += [source["passages"]] if source.get("type") == "qrecc" else []
        files = list(source.get("turns", {}).values()) if source.get("type") == "qrecc" else []
        for path in [tree / f for f in folders if f and not (tree / f).exists()]:
            path.mkdir(parents=True)
            made = True
        for path in [tree / f for f in files if not (tree / f).exists()]:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
            made = True
    return made


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def branch_point() -> str:
    """Where this branch left main (the default old revision)."""
    done = subprocess.run(["git", "merge-base", "HEAD", "main"], cwd=ROOT, capture_output=True, text=True, check=True)
    return done.stdout.strip()[:12]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def best_of(tree: Path, configfile: Path, repeat: int) -> tuple[float, float, int]:
    """The best wall and the best CPU time of ``repeat`` dry runs (CPU time: steadier on a shared machine)."""
    runs = [dry_run(tree, configfile) for _ in range(repeat)]
    return min(r[0] for r in runs), min(r[1] for r in runs), runs[0][2]


def best_of_both(old: tuple[Path, Path], new: tuple[Path, Path], repeat: int) -> tuple[tuple, tuple]:
    """best_of for the old and the new (tree, config), their runs alternating so that both see the same load."""
    runs = [(dry_run(*old), dry_run(*new)) for _ in range(repeat)]
    best = [(min(r[i][0] for r in runs), min(r[i][1] for r in runs), runs[0][i][2]) for i in (0, 1)]
    return best[0], best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--old", default=None, help="the revision to compare against (default: where this branch left main)"
    )
    parser.add_argument("--repeat", type=int, default=2, help="dry runs per tree and config (the best is shown)")
    parser.add_argument("--backbones", type=int, default=64, help="backbones of the generated paper-config copy")
    parser.add_argument("--configs", nargs="*", default=["config/config.yaml", "config/luo2024.yaml"])
    args = parser.parse_args()
    args.old = args.old or branch_point()
    print(f"old: {args.old}, new: this tree; load average (1, 5, 15 min) before: {load_average()}")

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
                (old_s, old_cpu, old_jobs), (new_s, new_cpu, new_jobs) = best_of_both(
                    (old_tree, old_path), (ROOT, path), args.repeat
                )
                print(
                    f"{label:<44} {old_s:8.2f} {new_s:6.2f} {old_s / new_s:6.2f} {old_cpu:8.2f} {new_cpu:6.2f}"
                    f" {old_cpu / new_cpu:6.2f} {old_jobs:9d} {new_jobs:6d}"
                )
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(old_tree)], cwd=ROOT, check=False)
    print(f"load average after: {load_average()}; best of {args.repeat} runs each, seconds")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
