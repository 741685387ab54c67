"""Render the penguin report: one self-contained HTML file (figures embedded), written atomically."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import jinja2
import pandas as pd

from ..processing import tables
from ..processing.summary import rollup
from .. import sources
from ..storage import boards

TEMPLATE = Path(__file__).with_name("penguin_report.html.j2")


@dataclass
class ReportInputs:
    summary: pd.DataFrame
    landed: pd.DataFrame
    model: dict


def load_report_inputs(con: duckdb.DuckDBPyConnection, board) -> ReportInputs:
    """Only small tables: the lookup table, the landing ledger and the model pin's metadata."""
    model = boards.latest_model_facts(board)
    if model is None:
        raise ValueError(f"no {boards.MODEL_PIN} pin on the board yet: materialize penguin_model first")
    return ReportInputs(
        summary=con.execute(f"SELECT * FROM {tables.SUMMARY}").df(),
        landed=con.execute(f"SELECT * FROM {tables.LEDGER} ORDER BY source_file").df(),
        model=model,
    )


def fingerprint(inputs: ReportInputs) -> str:
    """What the report shows, hashed: equal inputs (and the same next expected update), equal report."""
    parts = [str(inputs.model.get("version")), inputs.summary.to_csv(), inputs.landed.to_csv()]
    parts += [f"{s.name}:{s.next_expected():%Y%m%d%H%M}" for s in sources.SOURCES]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def rendered_fingerprint(path: Path) -> str | None:
    """The fingerprint an existing report was rendered from (read from its first lines only)."""
    if not Path(path).exists():
        return None
    with open(path, encoding="utf-8") as handle:
        head = handle.read(2048)
    match = re.search(r'<meta name="penguin-report-inputs" content="(\w+)">', head)
    return match.group(1) if match else None


def render_if_changed(inputs: ReportInputs, path: Path) -> bool:
    """Render unless the report at `path` was rendered from these same inputs; True if it rendered."""
    stamp = fingerprint(inputs)
    if rendered_fingerprint(path) == stamp:
        return False
    render_report(inputs, path, stamp)
    return True


def render_report(inputs: ReportInputs, path: Path, stamp: str | None = None) -> Path:
    from . import figures  # matplotlib: only when a report is actually drawn

    html = jinja2.Template(TEMPLATE.read_text(encoding="utf-8"), autoescape=True).render(
        generated_at=datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        fingerprint=stamp or fingerprint(inputs),
        model=inputs.model,
        species=rollup(inputs.summary, ["species"]).to_dict("records"),
        landed=inputs.landed.to_dict("records"),
        sources=sources.SOURCES,
        figures={
            "counts": figures.counts_by_island(inputs.summary),
            "mass": figures.body_mass_by_species_and_sex(inputs.summary),
            "bill_mass": figures.bill_length_vs_mass(inputs.summary),
        },
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".html.partial")
    partial.write_text(html, encoding="utf-8")
    os.replace(partial, path)  # readers see the old report or the new one, never half of one
    return path
