"""Where every benchmark writes its results: docs/benchmarks/results/<name>.json, which the docs'
benchmark pages draw their tables and plots from when the site is built (docs/hooks.py)."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path

import psutil

RESULTS_DIR = Path(__file__).resolve().parents[1] / "docs" / "benchmarks" / "results"


def machine() -> str:
    """The machine a figure was measured on, as the docs print it beside the figure."""
    memory = psutil.virtual_memory().total / 2**30
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{os.cpu_count()} cores, {memory:.0f} GiB, {platform.machine()}, "
        f"Python {platform.python_version()}, {platform.node()} (load {load} at the end)"
    )


def write_results(name: str, results: dict) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(results, indent=2) + "\n")
    return path


def append_results(name: str, entry: dict) -> Path:
    """Add one measurement to the file's history (newest last): comparisons are kept, not replaced,
    so the docs show the drift over time."""
    path = RESULTS_DIR / f"{name}.json"
    history = json.loads(path.read_text())["history"] if path.exists() else []
    return write_results(name, {"history": [*history, entry]})


def rows_from_markdown(table: str) -> list[dict]:
    """The rows of a Markdown table a bench prints, as the results file keeps them (numbers as
    numbers, so the docs can plot them): the printed table and the docs' table stay one."""
    lines = [line.strip().strip("|") for line in table.strip().splitlines()]
    header = [cell.strip() for cell in lines[0].split("|")]
    rows = []
    for line in lines[2:]:
        cells = [cell.strip() for cell in line.split("|")]
        rows.append({h: _number(c) for h, c in zip(header, cells, strict=False)})
    return rows


def _number(text: str):
    try:
        return float(text)
    except ValueError:
        return text
