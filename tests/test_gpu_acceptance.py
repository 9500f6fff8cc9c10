"""benchmarks/gpu_acceptance.py's in-process step runner (what `gpu_acceptance.sh --cpu` runs its steps with):
one log and one summary row per step, and a step that hangs, crashes, cannot run or lacks a module does not
stop the steps after it."""

import importlib.util
import os
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def acceptance(monkeypatch):
    spec = importlib.util.spec_from_file_location("gpu_acceptance", ROOT / "benchmarks" / "gpu_acceptance.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    def talks(out):
        print("from python")
        os.write(2, b"from the file descriptor\n")  # as C code and child processes write
        return 0

    def hangs(out):
        while True:
            time.sleep(1)

    def crashes(out):
        raise ValueError("boom in the step")

    def cannot(out):
        print("gpu_acceptance: needs a GPU", file=sys.stderr)
        return module.CANNOT_RUN

    monkeypatch.setattr(
        module,
        "IN_PROCESS_STEPS",
        {
            "talks": ((), talks),
            "hangs": ((), hangs),
            "crashes": ((), crashes),
            "cannot": ((), cannot),
            "missing": (("no_such_module_for_this_test",), talks),
        },
    )
    return module


def rows(out: Path) -> dict:
    return {line.split("\t")[0]: line.split("\t") for line in (out / "summary.tsv").read_text().splitlines()}


def test_every_step_gets_its_row_and_log_and_a_hung_or_crashed_step_does_not_stop_the_next(acceptance, tmp_path):
    code = acceptance.run_steps(tmp_path, ["hangs:0.2", "crashes", "cannot", "missing", "talks"])
    summary = rows(tmp_path)
    assert code == 1  # a TIMEOUT and a FAILED step fail the run
    assert list(summary) == ["hangs", "crashes", "cannot", "missing", "talks"]
    assert summary["hangs"][1] == "TIMEOUT"
    assert summary["crashes"][1] == "FAILED (exit 1)"
    assert "ValueError: boom in the step" in (tmp_path / "crashes.log").read_text()
    assert summary["cannot"][1] == "SKIPPED (gpu_acceptance: needs a GPU)"
    assert (
        summary["missing"][1].startswith("SKIPPED (needs no_such_module_for_this_test") and summary["missing"][3] == "-"
    )
    assert summary["talks"][1] == "PASSED" and summary["talks"][3] == str(tmp_path / "talks.log")
    assert (tmp_path / "talks.log").read_text() == "from python\nfrom the file descriptor\n"


def test_steps_that_pass_or_skip_leave_the_run_passing_and_the_output_back_on_the_terminal(acceptance, tmp_path, capfd):
    assert acceptance.run_steps(tmp_path, ["talks", "cannot"]) == 0
    printed = capfd.readouterr().out
    assert "from python" not in printed  # the step's output went to its log, the runner's lines here
    assert "== talks" in printed and "PASSED in" in printed and "SKIPPED (gpu_acceptance: needs a GPU)" in printed
