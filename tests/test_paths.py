"""One module owns the results layout: moving the root moves every planned file, and no rule,
script or package module spells a results path itself."""

from __future__ import annotations

import ast
import re

import yaml
from workflow_helpers import ROOT, job_counts, planned_jobs, scratch_copy, snakemake

from llm_retrieval.paths import Layout
from llm_retrieval.study import EvalUnit

PLANNED_FILE = re.compile(r"^\s*(?:output|log|benchmark): (.+)$")


def planned_files(output: str) -> set[str]:
    """Every output, log and benchmark path of the jobs a dry run lists."""
    files = set()
    for line in output.splitlines():
        match = PLANNED_FILE.match(line)
        if match:
            files.update(path.strip() for path in match.group(1).split(", "))
    return files


def test_a_new_results_root_moves_every_planned_output_log_and_benchmark(tmp_path):
    workdir = scratch_copy(tmp_path)
    demo = yaml.safe_load((ROOT / "config/demo.yaml").read_text())
    synthetic = demo["collections"]["synth-text"]["source"]
    assert synthetic["path"] == Layout("results").synthetic_text()
    override = {
        "results_root": "elsewhere/study",
        "collections": {"synth-text": {"source": dict(synthetic, path=Layout("elsewhere/study").synthetic_text())}},
    }
    (workdir / "config/moved.yaml").write_text(yaml.safe_dump(override))
    default = snakemake(workdir, "-n", "--configfile", "config/demo.yaml")
    moved = snakemake(workdir, "-n", "--configfile", "config/demo.yaml", "config/moved.yaml")

    before, after = planned_files(default.stdout + default.stderr), planned_files(moved.stdout + moved.stderr)
    assert before and all(path.startswith("results/") for path in before)
    assert all(path.startswith("elsewhere/study/") for path in after), sorted(
        p for p in after if not p.startswith("elsewhere/study/")
    )
    assert {path.replace("elsewhere/study/", "results/", 1) for path in after} == before
    assert job_counts(planned_jobs(moved.stdout + moved.stderr)) == job_counts(
        planned_jobs(default.stdout + default.stderr)
    )


def _code_strings(path):
    """String constants of a Python file that are not docstrings (a message may name a folder; a path is a whole string)."""
    tree = ast.parse(path.read_text())
    docstrings = {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
            yield node.value


def test_no_rule_script_or_module_but_the_layout_spells_a_results_path():
    spelled = []
    for path in [*(ROOT / "src").rglob("*.py"), *(ROOT / "workflow/scripts").glob("*.py")]:
        if path.name == "paths.py":
            continue
        spelled += [f"{path}: {s!r}" for s in _code_strings(path) if re.fullmatch(r"results(/[\w{}.-]*)*", s)]
    for path in [ROOT / "Snakefile", *(ROOT / "workflow/rules").glob("*.smk")]:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"""["'{]results[/"']""", code):
                spelled.append(f"{path}:{number}: {line.strip()}")
    assert not spelled, "results paths outside llm_retrieval/paths.py:\n" + "\n".join(spelled)


def test_every_layout_path_lies_under_its_root():
    layout = Layout("some/root")
    paths = [
        layout.stdlib_codesearch_pairs(),
        layout.synthetic_text(),
        layout.downloads("x"),
        *layout.collection_files("c").values(),
        layout.collection_manifest("c"),
        layout.backbone_record("b"),
        layout.model_dir("b"),
        layout.bm25_index("c"),
        layout.query_embeddings("s", "b", "c"),
        layout.corpus_shard("s", "b", "c", 3),
        layout.run_file("s", "b", "c", "q"),
        layout.metrics(EvalUnit("s", "b", "c", "q")),
        layout.training_groups("t"),
        layout.adapter("r", "b"),
        layout.adapter_snapshot("r", "b", 5),
        layout.training_report("r", "b"),
        layout.checkpoints("r", "b"),
        layout.table("t", "md"),
        layout.axis_table("zeroshot", "a", "csv"),
        layout.figure("t", "k", "svg"),
        layout.report_page("cost.md"),
        layout.log("rule/x"),
        layout.benchmark("rule/x"),
    ]
    assert all(p.startswith("some/root/") for p in paths), [p for p in paths if not p.startswith("some/root/")]
    assert len(set(paths)) == len(paths)
