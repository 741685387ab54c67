"""The report's figures, drawn from the pre-calculated lookup table, returned as embeddable PNGs."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..processing.monitoring import ALL_SPECIES  # noqa: E402
from ..processing.summary import HISTOGRAM_BINS, rollup  # noqa: E402

SPECIES_COLOURS = {"Adelie": "#ff7f0e", "Chinstrap": "#9467bd", "Gentoo": "#17becf"}


def _axes(height: float):
    # Fixed margins: matplotlib's constrained layout costs more than the drawing itself.
    fig, ax = plt.subplots(figsize=(6, height))
    fig.subplots_adjust(left=0.13, right=0.97, top=0.9, bottom=0.16)
    return fig, ax


def _png(fig) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def counts_by_island(summary: pd.DataFrame) -> str:
    table = rollup(summary, ["island", "species"]).pivot(
        index="island", columns="species", values="n_penguins"
    )
    fig, ax = _axes(3.2)
    table.fillna(0).plot.bar(
        ax=ax, color=[SPECIES_COLOURS.get(s, "grey") for s in table.columns], rot=0
    )
    ax.set_ylabel("penguins")
    ax.set_title("Penguins by island and species")
    return _png(fig)


def bill_length_vs_mass(summary: pd.DataFrame) -> str:
    groups = rollup(summary, ["species", "island", "sex", "year"])
    fig, ax = _axes(3.6)
    # Marker area follows the count, capped so the largest group stays ~120 pt^2 at any N
    # (the shipped data's groups are unchanged; 10^8 rows would otherwise fill the plot).
    scale = 4 * min(1.0, 30 / max(float(groups["n_penguins"].max()), 1.0))
    for species, rows in groups.groupby("species"):
        ax.scatter(
            rows["mean_bill_length_mm"],
            rows["mean_body_mass_g"],
            s=rows["n_penguins"] * scale,
            alpha=0.6,
            label=species,
            color=SPECIES_COLOURS.get(species, "grey"),
        )
    ax.set_xlabel("mean bill length (mm)")
    ax.set_ylabel("mean body mass (g)")
    ax.set_title("Group means (species x island x sex x year; size = penguins)")
    ax.legend()
    return _png(fig)


def distribution_by_species(histograms: pd.DataFrame, measure: str, label: str) -> str:
    """One measure's distribution per species (counts per bin, as steps): the spread and overlap
    a mean hides."""
    rows = histograms[histograms["measure"] == measure]
    width = HISTOGRAM_BINS[measure]
    fig, ax = _axes(3.2)
    for species, part in rows.groupby("species"):
        # Empty bins inside a species' range are drawn as zero, not bridged.
        start, stop = part["bin_start"].min(), part["bin_start"].max()
        bins = pd.Series(range(int(round((stop - start) / width)) + 2)) * width + start
        counts = part.set_index("bin_start")["n"].reindex(bins.round(6), fill_value=0)
        ax.step(
            counts.index,
            counts.to_numpy(),
            where="post",
            label=species,
            color=SPECIES_COLOURS.get(species, "grey"),
        )
    ax.set_xlabel(label)
    ax.set_ylabel("penguins")
    ax.set_title(f"Distribution of {label} by species")
    ax.legend()
    return _png(fig)


def metrics_over_seasons(metrics: pd.DataFrame) -> str | None:
    """Each version's out-of-time RMSE per season (all species); None before any season."""
    overall = metrics[(metrics["species"] == ALL_SPECIES) & (metrics["metric"] == "rmse")]
    if overall.empty:
        return None
    fig, ax = _axes(3.0)
    for version, part in overall.groupby("model_version"):
        ax.plot(part["season"], part["estimate"], marker="o", label=version)
    ax.set_xlabel("field season")
    ax.set_ylabel("RMSE (g)")
    ax.set_title("Served model's RMSE on each later season")
    seasons = sorted(overall["season"].unique())
    ax.set_xticks(seasons)
    ax.set_xlim(seasons[0] - 0.5, seasons[-1] + 0.5)
    ax.legend(fontsize="small")
    return _png(fig)
