"""Render the penguin report: one self-contained HTML file (figures embedded), rendered to a local
temp file, then written to the reports location (a folder or s3://bucket/prefix: atomically on
folders, one PUT on S3) and pinned beside the model on the board."""

from __future__ import annotations

import hashlib
import re
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from .. import sources
from ..processing import monitoring, tables
from ..processing.model_card import model_card
from ..processing.summary import rollup, species_histograms
from ..settings import REPORT_FILE_NAME
from ..storage import boards
from ..storage.locations import Location

TEMPLATE = Path(__file__).with_name("penguin_report.html.j2")


@dataclass
class ReportInputs:
    summary: pd.DataFrame
    landed: pd.DataFrame
    model: dict  # the champion's facts (pin metadata)
    decision: dict | None  # the newest promotion decision; None before the first
    metrics: pd.DataFrame  # model_metrics: every version's seasons
    drift: pd.DataFrame  # feature_drift
    histograms: pd.DataFrame  # each measure's distribution per species


# When a season was scored or drift measured changes nothing the report shows.
NOT_SHOWN = ["scored_at", "measured_at"]


def load_report_inputs(con: duckdb.DuckDBPyConnection, board) -> ReportInputs:
    """Small tables only: the lookup table, the landing ledger, the monitoring tables, per-species
    histograms counted in DuckDB, and the champion's pin metadata."""
    decision, model = boards.champion(board)
    if model is None:
        raise ValueError(
            f"no {boards.MODEL_PIN} pin on the board yet: materialize penguin_model first"
        )
    metrics, drift = monitoring.monitoring_history(con)
    return ReportInputs(
        summary=con.execute(f"SELECT * FROM {tables.SUMMARY}").df(),
        landed=con.execute(f"SELECT * FROM {tables.LEDGER} ORDER BY source_file").df(),
        model=model,
        decision=decision,
        metrics=metrics.drop(columns=NOT_SHOWN, errors="ignore"),
        drift=drift.drop(columns=NOT_SHOWN, errors="ignore"),
        histograms=species_histograms(con, tables.CLEAN),
    )


def fingerprint(inputs: ReportInputs) -> str:
    """What the report shows, hashed: equal inputs (and the same next expected update), equal
    report."""
    parts = [str(inputs.model.get("version")), inputs.summary.to_csv(), inputs.landed.to_csv()]
    parts += [str(sorted((inputs.decision or {}).items()))]
    parts += [f.to_csv() for f in (inputs.metrics, inputs.drift, inputs.histograms)]
    parts += [f"{s.name}:{s.next_expected():%Y%m%d%H%M}" for s in sources.SOURCES]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def rendered_fingerprint(reports: Location) -> str | None:
    """The fingerprint the published report was rendered from (read from its first bytes only)."""
    head = reports.read_start(REPORT_FILE_NAME, 2048)
    if head is None:
        return None
    match = re.search(rb'<meta name="penguin-report-inputs" content="(\w+)">', head)
    return match.group(1).decode() if match else None


def publish_if_changed(inputs: ReportInputs, reports: Location, board) -> bool:
    """Render and publish unless the published report was rendered from these same inputs.

    Publishing writes the report to `reports` (readers see the old report or the new one, never
    half of one) and pins it beside the model on `board`. True if it rendered.
    """
    stamp = fingerprint(inputs)
    if rendered_fingerprint(reports) == stamp:
        return False
    with tempfile.TemporaryDirectory(prefix="penguin-report-") as tmp:
        rendered = render_report(inputs, Path(tmp) / REPORT_FILE_NAME, stamp)
        reports.write(REPORT_FILE_NAME, rendered)
        # Versioned beside the model too, so an S3 deployment has it where the model is.
        boards.pin_report(board, rendered)
    return True


def render_report(inputs: ReportInputs, path: Path, stamp: str | None = None) -> Path:
    from . import figures  # matplotlib: only when a report is actually drawn
    from .card import TEMPLATES

    years = inputs.summary["year"].dropna()
    html = TEMPLATES.get_template(TEMPLATE.name).render(
        generated_at=datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        fingerprint=stamp or fingerprint(inputs),
        model=inputs.model,
        years=(int(years.min()), int(years.max())) if len(years) else None,
        species=rollup(inputs.summary, ["species"]).to_dict("records"),
        landed=inputs.landed.to_dict("records"),
        sources=sources.SOURCES,
        decision=inputs.decision,
        metrics=monitoring.metrics_table(inputs.metrics),
        drift=inputs.drift.to_dict("records"),
        card=model_card(inputs.model, inputs.metrics, inputs.decision),
        figures=_figures(inputs, figures),
    )
    path = Path(path)
    path.write_text(html, encoding="utf-8")
    return path


def _figures(inputs: ReportInputs, figures) -> dict:
    histograms = inputs.histograms
    return {
        "counts": figures.counts_by_island(inputs.summary),
        "bill_mass": figures.bill_length_vs_mass(inputs.summary),
        "seasons": figures.metrics_over_seasons(inputs.metrics),
        "mass": figures.distribution_by_species(histograms, "body_mass_g", "body mass (g)"),
        "bill": figures.distribution_by_species(histograms, "bill_length_mm", "bill length (mm)"),
    }
