"""The Python steps of benchmarks/gpu_acceptance.sh (environment, faiss growth, ZeRO-3 training drill).

    python benchmarks/gpu_acceptance.py env            OUT_DIR
    python benchmarks/gpu_acceptance.py faiss-growth   OUT_DIR [--docs 8841823] [--dim 3584]
    python benchmarks/gpu_acceptance.py train          OUT_DIR
    python benchmarks/gpu_acceptance.py steps          OUT_DIR STEP[:BUDGET_S] ...

Each writes a JSON of what it saw under OUT_DIR and exits non-zero when its check fails; 3 when it
cannot run here (a module missing, no GPU where one is needed), with the reason on stderr.

``steps`` runs several steps (names in IN_PROCESS_STEPS) one after the other in this one process, so
torch, transformers, peft and deepspeed are imported once, not once per step: each step's output goes
to OUT_DIR/STEP.log, its row (status, wall seconds) to OUT_DIR/summary.tsv as the shell's ``step`` writes
it, and a step over its budget is stopped (TIMEOUT) and the next one runs. Exit 1 when a step FAILED
or timed out. The shell script uses it in --cpu mode; on a GPU every step keeps its own process (a 7B
model's memory, or a CUDA error, does not outlive its step).
"""

import argparse
import importlib
import importlib.util
import json
import os
import platform
import signal
import sys
import time
import traceback
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
GIB = 2**30
CANNOT_RUN = 3
# What the GPU image has (torch, transformers, peft, pyarrow) and what the steps need beyond it.
MODULES = (
    "torch",
    "transformers",
    "peft",
    "pyarrow",
    "deepspeed",
    "faiss",
    "flash_attn",
    "snakemake",
    "pytest",
    "yaml",
    "submitit",
    "tokenizers",
)


def cannot_run(message: str) -> int:
    print(f"gpu_acceptance: {message}", file=sys.stderr)
    return CANNOT_RUN


def environment(out: Path) -> int:
    """Versions of every module the steps use, the GPUs, and what is missing."""
    report = {"python": platform.python_version(), "host": platform.node(), "modules": {}, "missing": []}
    for name in MODULES:
        try:
            module = importlib.import_module(name)
            report["modules"][name] = getattr(module, "__version__", "present")
        except Exception as err:  # noqa: BLE001 - an import that fails is a missing module, reported
            report["missing"].append(f"{name} ({type(err).__name__}: {str(err)[:120]})")
    import torch

    report["torch_cuda"] = torch.version.cuda
    report["gpus"] = (
        [
            {
                "name": torch.cuda.get_device_name(i),
                "memory_gib": round(torch.cuda.get_device_properties(i).total_memory / GIB, 1),
            }
            for i in range(torch.cuda.device_count())
        ]
        if torch.cuda.is_available()
        else []
    )
    if "faiss" in report["modules"]:
        import faiss

        report["faiss_gpus"] = getattr(faiss, "get_num_gpus", lambda: 0)()
    (out / "environment.json").write_text(json.dumps(report, indent=2))
    print(json.dumps(report, indent=2))
    return 0


def _used_bytes() -> int:
    import torch

    free, total = torch.cuda.mem_get_info(0)
    return total - free


def faiss_growth(out: Path, docs: int, dim: int, block_rows: int = 1 << 18) -> int:
    """The search job's faiss-gpu index at MS MARCO scale: memory reserved once, flat through every add."""
    import numpy as np

    try:
        import faiss
        import torch
    except ImportError as err:
        return cannot_run(f"faiss growth check needs faiss ({err})")
    if not torch.cuda.is_available() or getattr(faiss, "get_num_gpus", lambda: 0)() == 0:
        return cannot_run(
            "faiss-gpu sees no GPU here (faiss-cpu installed, or no CUDA): the script runs the torch "
            "path instead (benchmarks/search_gpu.py)"
        )
    from llm_retrieval.search import make_gpu_index

    start, before = time.perf_counter(), _used_bytes()
    resources, index = make_gpu_index(dim, 0, docs)
    reserved = _used_bytes()
    # One float32 block added again and again: the host's fp16 -> fp32 widening of 8.8M rows would take
    # minutes and is not what is checked here (the device memory across adds is).
    block = np.random.default_rng(0).standard_normal((block_rows, dim), dtype=np.float32)
    after_adds = []
    for offset in range(0, docs, block_rows):
        index.add(block[: min(block_rows, docs - offset)])
        after_adds.append(_used_bytes())
    scores, _ = index.search(block[:100], 10)
    store = docs * dim * 2
    result = {
        "docs": docs,
        "dim": dim,
        "store_gib": store / GIB,
        "before_gib": before / GIB,
        "after_reserve_gib": reserved / GIB,
        "max_after_adds_gib": max(after_adds) / GIB,
        "index_rows": index.ntotal,
        "seconds": time.perf_counter() - start,
        "growth_after_reserve_gib": (max(after_adds) - reserved) / GIB,
    }
    (out / "faiss_growth.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    # Growth after the reserve stays within faiss's scratch memory (about 1.5 GiB), not a second copy of the store.
    ok = index.ntotal == docs and reserved - before >= 0.95 * store and max(after_adds) - reserved < 2 * GIB
    ok = ok and bool(np.isfinite(scores).all())
    del index, resources
    return 0 if ok else 1


def _paper_config() -> dict:
    import yaml

    from llm_retrieval.config_schema import validate_config

    config = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    validate_config(config, str(ROOT / "workflow/schemas/config.schema.yaml"), source="config/config.yaml")
    return config


def train(out: Path) -> int:
    """Tiny model, the paper config's training path on one rank (ZeRO stage, bf16 and packing on a GPU):
    a SIGTERM after step 1 (checkpoint, exit 75), the resume, the adapter, then encoding with it."""
    for name in ("deepspeed", "yaml", "tokenizers"):  # found, not imported: the ranks import them
        if importlib.util.find_spec(name) is None:
            return cannot_run(
                f"the training drill needs {name} (not installed): pip install -r requirements.txt "
                "(or the carried wheels, see the script's header)"
            )
    import numpy as np
    import torch

    from llm_retrieval.encoder import Encoder, EncoderSpec
    from llm_retrieval.preflight import FAILED, drill

    config = _paper_config()
    config["training"]["zero_stage"] = 3  # the ZeRO-3 path (the paper config's auto would take 2 on one GPU)
    tiny = out / "tiny"
    record = drill.build_tiny_study(config, tiny)
    checks = drill.train_checks(tiny, out / "train", config, launcher="", world=1)
    log = (out / "train" / "first-attempt.log").read_text()
    on_gpu = torch.cuda.is_available()
    stand_ins = "stand-ins on cuda:0 before deepspeed.initialize" in log
    result = {"checks": [c.line() for c in checks], "on_gpu": on_gpu, "stand_ins_on_cuda": stand_ins}
    if all(c.status != FAILED for c in checks):
        spec = EncoderSpec(
            record,
            {**config["encoding"], "dtype": "bfloat16"},
            str(out / "train" / "adapter"),
            max_length=drill.drill_training(config)["max_length"],
        )
        device = "cuda:0" if on_gpu else "cpu"
        vectors = Encoder(spec, device).encode("passage", ["def add(a, b): return a + b", "a short passage"])
        result["adapter_encoding"] = {
            "device": device,
            "shape": list(vectors.shape),
            "finite": bool(np.isfinite(vectors).all()),
        }
    (out / "train_drill.json").write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    ok = all(c.status != FAILED for c in checks) and result.get("adapter_encoding", {}).get("finite", False)
    return 0 if ok and (stand_ins or not on_gpu) else 1


def _benchmark_main(module: str, *argv: str):
    """A benchmarks/ script's main(argv), run in this process; its return value (or sys.exit code)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        return importlib.import_module(module).main(list(argv))
    except SystemExit as stop:
        return stop.code
    finally:
        sys.path.remove(str(ROOT / "benchmarks"))


# name: (modules it needs, what it runs with OUT_DIR): the --cpu steps, as the shell script names them.
IN_PROCESS_STEPS = {
    "environment": ((), environment),
    "torch_search_smoke": (("faiss",), lambda out: _benchmark_main("search_gpu", "--smoke")),
    "train_zero3_drill": (("deepspeed", "yaml", "tokenizers"), train),
    "encode_gpu_7b_smoke": ((), lambda out: _benchmark_main("encode_gpu_7b", "--smoke")),
    "train_gpu_smoke": (("deepspeed",), lambda out: _benchmark_main("train_gpu", "--smoke")),
}


class StepTimeout(BaseException):
    """A step ran past its budget (raised by the alarm; a BaseException, so no library's
    ``except Exception`` swallows it)."""


def _alarm(signum, frame):
    raise StepTimeout


@contextmanager
def _output_to(log: Path):
    """sys.stdout, sys.stderr and file descriptors 1 and 2 (C code's and child processes' writes) into ``log``."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved, streams = (os.dup(1), os.dup(2)), (sys.stdout, sys.stderr)
    with open(log, "w", buffering=1) as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        sys.stdout = sys.stderr = sink
        try:
            yield
        finally:
            sys.stdout, sys.stderr = streams
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _run_step(log: Path, name: str, budget: float) -> str:
    """One in-process step with its budget, its output in ``log``: its status as the summary writes it."""
    signal.signal(signal.SIGALRM, _alarm)
    with _output_to(log):
        try:
            signal.setitimer(signal.ITIMER_REAL, budget)
            code = IN_PROCESS_STEPS[name][1](log.parent)
            signal.setitimer(signal.ITIMER_REAL, 0)
        except StepTimeout:
            code = "TIMEOUT"
        except (Exception, SystemExit):  # noqa: BLE001 - a step's crash is its FAILED row; the next step runs
            signal.setitimer(signal.ITIMER_REAL, 0)
            traceback.print_exc()
            code = 1
    if code == "TIMEOUT":
        return "TIMEOUT"
    if code in (0, None):
        return "PASSED"
    if code == CANNOT_RUN:
        return f"SKIPPED ({(log.read_text().strip().splitlines() or ['exit 3'])[-1][:200]})"
    return f"FAILED (exit {code})"


def _cpu_seconds() -> float:
    """User + system CPU seconds of this process and of the finished processes it started."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_steps(out: Path, steps: list[str]) -> int:
    """``NAME[:BUDGET_S]`` steps in this process, one summary row and two printed lines each."""
    summary = out / "summary.tsv"
    failed = False
    for item in steps:
        name, _, budget = item.partition(":")
        print(f"== {name} (budget {budget or 300} s, in one process with the steps around it)", flush=True)
        start, cpu, log = time.perf_counter(), _cpu_seconds(), out / f"{name}.log"
        missing = [m for m in IN_PROCESS_STEPS[name][0] if importlib.util.find_spec(m) is None]
        if missing:
            status, log = f"SKIPPED (needs {missing[0]}: see the header of benchmarks/gpu_acceptance.sh)", "-"
        else:
            status = _run_step(log, name, float(budget or 300))
        seconds, cpu = time.perf_counter() - start, _cpu_seconds() - cpu
        with open(summary, "a") as rows:
            rows.write(f"{name}\t{status}\t{seconds:.1f}\t{log}\n")
        # CPU seconds next to wall seconds: on a shared machine the wall time is mostly the load.
        print(f"   {status} in {seconds:.1f} s ({cpu:.1f} CPU s with its processes; log: {log})", flush=True)
        if status.startswith(("FAILED", "TIMEOUT")):
            failed = True
            print("\n".join((out / f"{name}.log").read_text().splitlines()[-15:]), flush=True)
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=["env", "faiss-growth", "train", "steps"])
    parser.add_argument("out", type=Path)
    parser.add_argument("names", nargs="*", help="steps: NAME[:BUDGET_S] of IN_PROCESS_STEPS, in order")
    parser.add_argument("--docs", type=int, default=8_841_823, help="MS MARCO's passages")
    parser.add_argument("--dim", type=int, default=3584, help="a 7B Qwen2.5's hidden size")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.step == "env":
        return environment(args.out)
    if args.step == "steps":
        return run_steps(args.out, args.names)
    if args.step == "faiss-growth":
        return faiss_growth(args.out, args.docs, args.dim)
    return train(args.out)


if __name__ == "__main__":
    sys.exit(main())
