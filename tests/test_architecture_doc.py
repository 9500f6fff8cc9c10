"""docs/architecture.md stays the map of the workflow: every rule has a row, and what a row names exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
RULE = re.compile(r"^(?:local)?rule (\w+):", re.MULTILINE)


def table_rows() -> dict[str, list[str]]:
    """rule name -> the cells of its row in the stage table."""
    rows = {}
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 6 and cells[2].startswith("`"):
            rows[cells[2].strip("`")] = cells
    return rows


def test_every_rule_of_the_workflow_has_a_row_in_the_architecture_table():
    rules = {name for smk in (ROOT / "workflow/rules").glob("*.smk") for name in RULE.findall(smk.read_text())}
    assert rules, "no rules parsed"
    missing = rules - set(table_rows())
    assert not missing, f"docs/architecture.md: add a row for {sorted(missing)}"


def test_each_row_names_the_rule_file_and_script_that_exist():
    for rule, (_, rule_file, _, script, _, _) in table_rows().items():
        smk = ROOT / "workflow/rules" / rule_file.strip("`")
        assert RULE.search(smk.read_text()) and f"rule {rule}:" in smk.read_text(), (rule, rule_file)
        assert (ROOT / "workflow/scripts" / script.split("`")[1]).is_file(), (rule, script)
