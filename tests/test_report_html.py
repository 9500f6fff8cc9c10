"""The study's HTML report (snakemake --report) built from the finished mini study, and opened in
a real headless browser (Chromium from Debian's packages)."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from workflow_helpers import snakemake

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def build_report(workdir: Path, name: str = "report.html") -> str:
    snakemake(workdir, "--configfile", "config/mini.yaml", "--report", f"results/{name}")
    return (workdir / "results" / name).read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def mini_report(finished_mini):
    return build_report(finished_mini)


@pytest.mark.slow
def test_mini_report_holds_every_table_figure_page_and_the_summary(finished_mini, mini_report):
    for table in ("beir", "coir", "supervised"):
        assert f"{table}.html" in mini_report and f"{table}.fidelity.html" in mini_report
    for figure in ("heatmap.svg", "scatter.svg", "averages.svg", "win_tie_loss.svg"):
        assert mini_report.count(figure) >= 3  # one per table
    for page in ("summary.html", "cost.html", "cost.csv", "provenance.html"):
        assert page in mini_report
    for category in ("Overview", "Zero-shot", "Supervised"):
        assert category in mini_report
    summary = (finished_mini / "results/report/summary.md").read_text()
    assert "Demo caveat" in summary and "random weights" in summary  # tiny built models
    assert re.search(r"On \*Mini BEIR-style\*, \S+ has the highest average nDCG@10 \(\d\.\d{3}", summary)
    assert "random weights" in mini_report and "All 3 tables are made" in mini_report
    # The mini study's datasets are not the paper's: the scatter says so instead of plotting nothing.
    scatter = (finished_mini / "results/report/figures/beir/scatter.svg").read_text()
    assert "no cell has a published counterpart" in scatter
    provenance = (finished_mini / "results/report/provenance.html").read_text()
    assert "torch==" in provenance and "Config used" in provenance and "vl-i" in provenance
    cost = (finished_mini / "results/report/cost.md").read_text()
    assert "| encode_corpus_shard |" in cost and "estimate" in cost


@pytest.mark.slow
def test_report_lists_tables_not_yet_made_on_its_first_page(finished_mini, mini_report):
    table = finished_mini / "results/tables/coir.html"
    kept = table.read_bytes()
    table.unlink()
    try:
        text = build_report(finished_mini, "partial.html")
    finally:
        table.write_bytes(kept)
        os.utime(table, (table.stat().st_mtime, (finished_mini / "results/tables/coir.md").stat().st_mtime))
    assert "Not yet made" in text and "results/tables/coir.html" in text
    assert "beir.html" in text  # the tables that exist are still in it


def screenshot(html: Path, png: Path, size=(1400, 1000)) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--window-size={size[0]},{size[1]}",
            "--virtual-time-budget=8000",
            f"--screenshot={png}",
            html.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def distinct_colours(png: Path) -> int:
    from PIL import Image

    with Image.open(png) as image:
        return len(image.convert("RGB").getcolors(maxcolors=1 << 20) or [])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true", reason="chromium not installed")
def test_report_renders_in_headless_chromium_with_its_figures(finished_mini, mini_report, tmp_path):
    assert CHROMIUM, "chromium is required in CI (.ci/run installs it)"
    report = finished_mini / "results/report.html"
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=8000",
            "--dump-dom",
            report.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Specialized LLMs as dense retrievers" in dom.stdout  # the app rendered its first page
    proc = screenshot(report, tmp_path / "report.png")
    assert proc.returncode == 0 and (tmp_path / "report.png").exists(), proc.stderr[-2000:]
    assert distinct_colours(tmp_path / "report.png") > 20  # not a blank page
    # Every figure the report embeds, drawn by the browser from the report's own data.
    figures = re.findall(
        r"data:image/svg\+xml;charset=utf8;filename=(?:heatmap|scatter|averages|win_tie_loss)\.svg;base64,([A-Za-z0-9+/=]+)",
        mini_report,
    )
    assert len(figures) >= 12, "the report embeds every table's four figures"
    page = tmp_path / "figures.html"
    page.write_text(
        "<html><body style='margin:0;background:#fff'>"
        + "".join(f"<img src='data:image/svg+xml;base64,{b}' style='width:340px'>" for b in figures[:12])
        + "</body></html>"
    )
    proc = screenshot(page, tmp_path / "figures.png", (1400, 1400))
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert distinct_colours(tmp_path / "figures.png") > 200  # heatmaps, bars and points, not broken images
    assert all(b"<svg" in base64.b64decode(b)[:400] for b in figures[:12])


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None and os.environ.get("CI") != "true", reason="chromium not installed")
def test_report_first_page_shows_the_main_tables_numbers_in_headless_chromium(finished_mini, mini_report, tmp_path):
    import yaml

    from llm_retrieval.report import summary
    from llm_retrieval.report.tables import read_table

    assert CHROMIUM, "chromium is required in CI (.ci/run installs it)"
    config = yaml.safe_load((finished_mini / "config/mini.yaml").read_text())
    (main,) = summary.main_tables(config)
    table = read_table(finished_mini / f"results/tables/{main}.json")
    number = f"{table.cell(table.anchor, table.items[0]).ours:.4f}"
    report = finished_mini / "results/report.html"
    dom = subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--virtual-time-budget=8000",
            "--dump-dom",
            report.as_uri(),
        ],
        check=False,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert dom.returncode == 0, dom.stderr[-2000:]
    # The page the browser shows first, not the data embedded for the menu (scripts, base64 files).
    shown = re.sub(r"<script\b.*?</script>", "", dom.stdout, flags=re.DOTALL)
    front = shown[shown.index("Specialized LLMs as dense retrievers") :]
    assert "<table" in front and table.title in front
    assert number in front, f"{number} (the main table's {table.anchor} / {table.items[0]}) is not on the first page"
    proc = screenshot(report, tmp_path / "first_page.png", (1400, 1600))
    assert proc.returncode == 0 and distinct_colours(tmp_path / "first_page.png") > 20, proc.stderr[-2000:]
