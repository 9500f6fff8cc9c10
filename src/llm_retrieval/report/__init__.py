"""The study's report: comparison tables with significance, reproduction fidelity, figures, cost, summary.

- ``tables``: the paper's tables (md / csv / html / json) with paired tests against Base, Holm, CIs;
- ``significance``: the tests, Holm's correction, bootstrap intervals;
- ``reference``: the published tables, read and checked;
- ``fidelity``: how close our numbers are to the published ones;
- ``figures``, ``cost``, ``summary``: the figures, the cost table, the opening paragraph.

Import the submodules themselves: this package imports none of them, so the DAG build (which reads
``FIGURE_KINDS`` and ``PIN_FILES``) loads no statistics or plotting library (tests/test_dag_imports.py).
What a table reads is planned by ``Study.table_collections`` / ``Study.table_units``.
"""

FIGURE_KINDS = ("heatmap", "scatter", "averages", "win_tie_loss")  # figures.draw_all writes <kind>.svg / .png
PIN_FILES = (
    "requirements.txt",
    "requirements-test.txt",
    "requirements.lock",
    "requirements-lock.txt",
    "pylock.toml",
    "uv.lock",
    "envs/retrieval.yaml",
)  # pinned revisions shown in the report where present
