"""The documentation site: docs/gen.py's generated pages, and `make docs` (offline, strict)."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

PROJECT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("docs_gen", PROJECT / "docs" / "gen.py")
gen = importlib.util.module_from_spec(spec)
spec.loader.exec_module(gen)

# What a browser would fetch from another host: a script, a stylesheet or a font. Namespaces
# (xmlns="http://www.w3.org/...") and plain links to other sites are not fetched.
FETCHED_FROM_ANOTHER_HOST = [
    re.compile(r"<script[^>]+src=[\"']?(?:https?:)?//", re.I),
    re.compile(r"<link[^>]+href=[\"']?(?:https?:)?//[^>]*>", re.I),
    re.compile(r"@import\s+(?:url\()?[\"']?(?:https?:)?//", re.I),
    re.compile(r"url\([\"']?(?:https?:)?//[^)]*\.(?:woff2?|ttf|otf|eot|css)", re.I),
]


def test_a_results_file_becomes_a_table_with_its_date_machine_and_peer(tmp_path):
    results = tmp_path / "results"
    results.mkdir()
    entry = {
        "date": "2026-12-01T10:00Z",
        "machine": "2 cores, test box",
        "peer": "plain pandas",
        "rows": [{"N rows": 10000, "ours (s)": 8.3}, {"N rows": 1000000, "ours (s)": 17.25}],
        "plot": {"x": "N rows", "y": ["ours (s)"]},
    }
    (results / "scale.json").write_text(json.dumps({"history": [entry]}))
    out = tmp_path / "out"
    out.mkdir()
    assert gen.write_benchmarks(out, results) == ["scale"]
    page = (out / "bench-scale.md").read_text()
    assert "**2026-12-01T10:00Z**, 2 cores, test box" in page
    assert "- peer: plain pandas" in page
    assert "| N rows | ours (s) |" in page and "| 1000000 | 17.25 |" in page
    assert "](../generated/bench-scale.png)" in page
    assert (out / "bench-scale.png").read_bytes()[:4] == b"\x89PNG"


def test_the_plot_is_of_the_newest_entry_with_a_figure_to_draw(tmp_path):
    """A run of some backends only records words where the plotted columns are ("not run"): the
    plot is then of the entry before, not a failed build (a log scale of no values)."""
    plot = {"x": "N rows", "y": ["ours (s)"], "log": True}
    drawn = {"date": "first", "rows": [{"N rows": 10, "ours (s)": 8.3}], "plot": plot}
    words = {"date": "second", "rows": [{"N rows": 10, "ours (s)": "not run"}], "plot": plot}
    assert [gen.drawable(e) for e in (drawn, words)] == [True, False]
    assert gen.plot_results({"history": [drawn, words]}, tmp_path / "a.png")
    assert not gen.plot_results({"history": [words]}, tmp_path / "b.png")


def test_an_entry_without_rows_lists_its_scalar_figures_flattened():
    entry = {"date": "d", "machine": "m", "base": {"seconds_median": 19.98, "runs": [{"s": 1}]}}
    text = gen.entry_markdown(entry)
    assert "| base.seconds_median | 19.98 |" in text
    assert "runs" not in text


def test_env_example_variables_take_the_comment_above_them():
    text = "# Root of all data\n# PENGUIN_DATA_DIR=data\n\n# Two knobs\n# KNOB_A=1\n# KNOB_B=2\n"
    text += "# KNOB_A=3\n"
    table = gen.environment(text)
    assert "| `PENGUIN_DATA_DIR` | `data` | Root of all data |" in table
    assert "| `KNOB_B` | `2` | Two knobs |" in table
    assert table.count("`KNOB_A`") == 1


def test_make_targets_come_from_the_makefiles_comments():
    makefile = "run: setup  ## run it once\n\nhidden:\n\techo\nbench-x: setup  ## measure x\n"
    assert gen.make_targets(makefile).splitlines()[2:] == [
        "| `make run` | run it once |",
        "| `make bench-x` | measure x |",
    ]


def test_a_nav_entry_without_its_page_is_named(tmp_path):
    (tmp_path / "a.md").write_text("# A\n")
    config = "theme: !!python/name:x.y\nnav:\n  - a.md\n  - Part:\n      - b/c.md\n"
    assert gen.missing_pages(config, tmp_path) == ["b/c.md"]


def build(root: Path) -> subprocess.CompletedProcess:
    """`make docs`'s two steps on a copy of the docs, so a test can break a page."""
    generated = subprocess.run(
        [sys.executable, str(root / "docs" / "gen.py"), "--config", str(root / "mkdocs.yml")],
        capture_output=True,
        text=True,
        timeout=240,
    )
    if generated.returncode != 0:
        return generated
    zensical = Path(sys.executable).with_name("zensical")
    return subprocess.run(
        [str(zensical), "build", "--strict", "--clean", "-f", str(root / "mkdocs.yml")],
        cwd=root,  # the snippets' base_path (docs, .) is read from the working folder, as make does
        capture_output=True,
        text=True,
        timeout=240,
    )


@pytest.fixture
def docs_copy(tmp_path) -> Path:
    shutil.copytree(PROJECT / "docs", tmp_path / "docs", ignore=shutil.ignore_patterns("generated"))
    for source in ("mkdocs.yml", ".env.example", "Makefile"):  # what gen.py reads beside docs/
        shutil.copy(PROJECT / source, tmp_path)
    shutil.copytree(PROJECT / "deploy", tmp_path / "deploy")  # files pages show as they are
    return tmp_path


@pytest.mark.integration
def test_the_site_builds_offline_and_a_broken_link_fails_it(docs_copy):
    built = build(docs_copy)
    assert built.returncode == 0, built.stdout + built.stderr
    site = docs_copy / "site"
    pages = list(site.rglob("*.html")) + list(site.rglob("*.css"))
    assert len(pages) > 20
    for page in pages:
        text = page.read_text(errors="replace")
        for pattern in FETCHED_FROM_ANOTHER_HOST:
            assert not pattern.search(text), f"{page.relative_to(site)}: {pattern.search(text)[0]}"
    api = (site / "reference" / "api.html").read_text()
    assert "POST /predict" in api and "GET /model-card" in api
    assert (site / "generated" / "bench-scale.png").exists()

    index = docs_copy / "docs" / "index.md"
    index.write_text(index.read_text() + "\n[a page that is not there](nowhere.md)\n")
    broken = build(docs_copy)
    assert broken.returncode != 0
    said = re.sub(r"\x1b\[[0-9;]*m", "", broken.stdout + broken.stderr)
    assert "page does not exist" in said and "index.md:" in said


@pytest.mark.integration
def test_a_nav_entry_without_its_page_fails_the_build(docs_copy):
    config = docs_copy / "mkdocs.yml"
    config.write_text(config.read_text().replace("  - Tutorial: tutorial.md", "  - T: gone.md"))
    failed = build(docs_copy)
    assert failed.returncode != 0 and "gone.md" in failed.stderr


def test_a_benchs_printed_table_is_kept_with_numbers_as_numbers():
    from bench.results_file import rows_from_markdown

    printed = "| N rows | time (s) |\n|---:|---:|\n| 1e+04 | 8.3 |\n| 1e+08 | stopped at 12 GiB |"
    assert rows_from_markdown(printed) == [
        {"N rows": 1e4, "time (s)": 8.3},
        {"N rows": 1e8, "time (s)": "stopped at 12 GiB"},
    ]
