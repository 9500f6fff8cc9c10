#!/usr/bin/env bash
# One GPU acceptance run: on one H100/H200-class GPU, at most 8 minutes, every figure and log under one
# folder ($OUT when set, else results/gpu_acceptance/<time>). Each step has its own time budget (the
# budgets add up to 8 minutes); a step over budget is stopped and reported TIMEOUT, and the run goes on.
#
#   bash benchmarks/gpu_acceptance.sh          # on a GPU node
#   bash benchmarks/gpu_acceptance.sh --cpu    # the steps that run without a GPU (CI runs it), < 3 minutes
#
# --cpu runs, in one Python process (torch, transformers, peft and deepspeed imported once, not once per
# step; each step still has its own log, budget and summary row): the environment report, the torch
# search path (--smoke), the same ZeRO-3 training drill as on a GPU (SIGTERM checkpoint, resume, adapter
# export, encoding with it; fp32 on the CPU, its two training attempts are processes of their own),
# encode_gpu_7b.py --smoke and train_gpu.py --smoke (the code paths on tiny models). Not in --cpu:
# packed vs padded (its CPU form, tests/test_train_model.py::test_packed_row_gives_the_padded_embeddings,
# is in the test suite that CI runs just before this) and `pytest -m gpu` (every test in it skips
# without CUDA).
#
# Steps: the environment report; faiss-gpu's index at MS MARCO scale, memory reserved once (or the torch
# search path where faiss-gpu is missing); the tiny model trained through the paper config's ZeRO path
# in bf16 with packing (every ZeRO-3 stand-in asserted on CUDA before deepspeed.initialize), a SIGTERM
# checkpoint, its resume, the adapter export and encoding with it; packed vs padded embeddings in bf16
# (cosine > 0.999); `pytest -m gpu`; benchmarks/encode_gpu_7b.py and benchmarks/train_gpu.py on a
# random-weight Qwen2.5-7B built on the GPU.
#
# Needs beyond a GPU image with torch (CUDA), transformers, peft and pyarrow: deepspeed, faiss (faiss-gpu
# for the growth check), pytest, pyyaml, tokenizers, submitit and this package's other requirements
# (requirements.txt). Where the image lacks them, carry wheels: on a machine with the internet
#   pip download --no-deps -d wheels -r requirements.txt -r requirements-test.txt
# and set WHEELS=wheels: missing modules are then installed from there (pip --no-index). A step whose
# module is missing is reported SKIPPED with the module's name; the run fails only on FAILED steps.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=gpu
[ "${1:-}" = "--cpu" ] && MODE=cpu
OUT=${OUT:-results/gpu_acceptance/$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
# The project's environment when there is one (setup.sh makes .venv), else the image's python.
if [ -z "${PYTHON:-}" ] && [ -x .venv/bin/python ]; then PY=$PWD/.venv/bin/python; else PY=${PYTHON:-python}; fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
SUMMARY="$OUT/summary.tsv"
printf 'step\tstatus\tseconds\tlog\n' > "$SUMMARY"
FAILED=0

# Installed (found on the path), not imported: importing deepspeed takes seconds; an installed module
# whose import fails makes its step FAILED, with the error in the step's log.
has() { "$PY" -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('$1') is None)" >/dev/null 2>&1; }

if [ -n "${WHEELS:-}" ]; then
    for module in deepspeed faiss pytest yaml tokenizers submitit; do
        has "$module" || "$PY" -m pip install -q --no-index --find-links "$WHEELS" "$module" "torch==$("$PY" -c 'import torch; print(torch.__version__.split("+")[0])')" \
            || echo "gpu_acceptance: $module is not among the wheels in $WHEELS" >&2
    done
fi

# step NAME BUDGET_S NEEDS CMD...: run CMD with its budget, log to $OUT/NAME.log, one summary row.
step() {
    local name=$1 budget=$2 needs=$3 status start seconds rc
    shift 3
    for module in ${needs//,/ }; do
        if ! has "$module"; then
            printf '%s\tSKIPPED (needs %s: see the header of benchmarks/gpu_acceptance.sh)\t0\t-\n' "$name" "$module" >> "$SUMMARY"
            echo "== $name: SKIPPED, module $module missing (pip install -r requirements.txt, or WHEELS=...)"
            return
        fi
    done
    echo "== $name (budget ${budget} s): $*"
    start=$EPOCHREALTIME
    timeout --kill-after=10 "$budget" "$@" > "$OUT/$name.log" 2>&1
    rc=$?
    seconds=$(awk -v a="$start" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
    case $rc in
        0) status=PASSED ;;
        124|137) status=TIMEOUT; FAILED=1 ;;
        3) status="SKIPPED ($(tail -1 "$OUT/$name.log" | cut -c1-200))" ;;
        *) status="FAILED (exit $rc)"; FAILED=1 ;;
    esac
    printf '%s\t%s\t%s\t%s\n' "$name" "$status" "$seconds" "$OUT/$name.log" >> "$SUMMARY"
    echo "   $status in ${seconds} s (log: $OUT/$name.log)"
    [ "${status%% *}" = FAILED ] && tail -n 15 "$OUT/$name.log"
}

# in_one_process BUDGET_S NAME:BUDGET_S ...: the steps (IN_PROCESS_STEPS in benchmarks/gpu_acceptance.py)
# one after the other in one Python process, which writes their summary rows and stops a step over its
# budget; BUDGET_S stops the whole process where a step hangs inside one C call.
in_one_process() {
    local budget=$1 rc
    shift
    timeout --kill-after=10 "$budget" "$PY" benchmarks/gpu_acceptance.py steps "$OUT" "$@"
    rc=$?
    case $rc in
        0) ;;
        1) FAILED=1 ;;  # a step FAILED or timed out: its row says which
        124|137) FAILED=1
            printf 'in_one_process\tTIMEOUT (after %s s: the steps without a row did not finish)\t%s\t-\n' "$budget" "$budget" >> "$SUMMARY" ;;
        *) FAILED=1
            printf 'in_one_process\tFAILED (exit %s: the steps without a row did not finish)\t-\t-\n' "$rc" >> "$SUMMARY" ;;
    esac
}

WALL_START=$(date +%s)
if [ "$MODE" = gpu ]; then
    step environment 30 "" "$PY" benchmarks/gpu_acceptance.py env "$OUT"
    if "$PY" -c 'import faiss, sys; sys.exit(0 if faiss.get_num_gpus() > 0 else 1)' >/dev/null 2>&1; then
        step faiss_growth_msmarco 90 faiss "$PY" benchmarks/gpu_acceptance.py faiss-growth "$OUT"
    else
        echo "== faiss-gpu is not installed or sees no GPU: the search jobs would take the torch path; timing it at MS MARCO scale"
        step torch_search_msmarco 90 faiss "$PY" benchmarks/search_gpu.py --docs 8841823 --queries 6980 --depth 1000
    fi
    step train_zero3_drill 90 deepspeed,yaml,tokenizers "$PY" benchmarks/gpu_acceptance.py train "$OUT"
    step packed_vs_padded_bf16 30 pytest,yaml "$PY" -m pytest -p no:cacheprovider --basetemp "$OUT/pytest-packed" -q -rs tests/test_train_model.py -k packed_and_padded
    step pytest_gpu 105 pytest,deepspeed,faiss "$PY" -m pytest -p no:cacheprovider --basetemp "$OUT/pytest-gpu" -q -rs -m gpu -k "not packed_and_padded" tests
    step encode_gpu_7b 60 "" "$PY" benchmarks/encode_gpu_7b.py --texts 2048 --no-load
    step train_gpu_7b 75 deepspeed "$PY" benchmarks/train_gpu.py --steps 4 --warmup 1 --queries 1 --modes zero3
else
    # Budgets here only stop a hung step: CI machines are shared, the times are reported, not asserted.
    # One thread per process: the models are tiny, and on a shared CI machine a second OpenMP thread
    # spins more than it computes (measured: encode smoke 2.3 -> 0.7 CPU s, train smoke 3.9 -> 2.4).
    export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
    in_one_process 1530 environment:300 torch_search_smoke:300 train_zero3_drill:300 encode_gpu_7b_smoke:300 train_gpu_smoke:300
    echo "== packed vs padded: not run in --cpu mode (the test suite runs its CPU form, test_packed_row_gives_the_padded_embeddings)"
    echo "== pytest -m gpu: not run in --cpu mode (every test in it skips without CUDA)"
fi
echo "gpu_acceptance ($MODE): $(( $(date +%s) - WALL_START )) s wall; summary: $SUMMARY"
column -t -s $'\t' "$SUMMARY" 2>/dev/null || cat "$SUMMARY"
exit $FAILED
