"""The report's figures, drawn from the pre-calculated lookup table, returned as embeddable PNGs."""

from __future__ import annotations

import base64
import io

import matplotlib

matplotlib.use("Agg")  # no display on servers; must precede pyplot
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from ..processing.summary import rollup  # noqa: E402

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


def body_mass_by_species_and_sex(summary: pd.DataFrame) -> str:
    known_sex = summary[summary["sex"].notna()]
    table = rollup(known_sex, ["species", "sex"]).pivot(
        index="species", columns="sex", values="mean_body_mass_g"
    )
    fig, ax = _axes(3.2)
    table.plot.bar(ax=ax, rot=0, color=["#c44e52", "#4c72b0"])
    ax.set_ylabel("mean body mass (g)")
    ax.set_title("Body mass by species and sex")
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
