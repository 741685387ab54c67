"""What the page says, made from the API's answers: plain functions and an HTML figure, so
the Shiny server only wires inputs to them (and tests call them without a browser)."""

from __future__ import annotations

from dataclasses import dataclass

from shiny import ui
from shiny.ui import Tag

from .client import ApiClient, ApiProblem, Prediction, ServedInputs

MEASURE = "body_mass_g"


@dataclass(frozen=True)
class Outcome:
    """One input's result: a prediction, or the sentence (and refused fields) instead."""

    prediction: Prediction | None = None
    problem: str | None = None
    fields: tuple[tuple[str, str], ...] = ()


def predict(client: ApiClient, record: dict) -> Outcome:
    try:
        return Outcome(prediction=client.predict(record))
    except ApiProblem as problem:
        return Outcome(problem=problem.sentence, fields=tuple(problem.fields.items()))


def grams(prediction: Prediction) -> str:
    """To the gram, as the API's number rounds."""
    return f"{prediction.grams:,.0f} g"


def version_lines(prediction: Prediction, inputs: ServedInputs | None) -> list[str]:
    lines = [f"Model version {prediction.model_version}"]
    if inputs is not None and inputs.model_version == prediction.model_version:
        if inputs.is_champion:
            lines[0] += " (the champion)"
        else:
            champion = inputs.champion_version or "none yet"
            lines[0] += f" (not the champion; the champion is {champion})"
    lines.append(f"Data snapshot {prediction.data_snapshot or 'not recorded'}")
    return lines


@dataclass(frozen=True)
class Placement:
    species: str
    sex: str
    grams: float
    n: int
    mean: float
    sd: float | None
    groups: tuple[dict, ...]  # every sex of that species, for the figure

    @property
    def z(self) -> float | None:
        return (self.grams - self.mean) / self.sd if self.sd else None


def place(rows: list[dict], species: str, sex: str, grams: float) -> Placement | None:
    """The prediction beside the lookup table's row for that species and sex (None: no row)."""
    groups = tuple(r for r in rows if r["species"] == species and r.get(f"mean_{MEASURE}"))
    mine = [r for r in groups if r["sex"] == sex]
    if not mine:
        return None
    row = mine[0]
    n, mean, sd = row[f"n_{MEASURE}"], row[f"mean_{MEASURE}"], row[f"sd_{MEASURE}"]
    return Placement(species, sex, grams, n, mean, sd, groups)


def describe(placement: Placement | None, species: str, sex: str) -> str:
    if placement is None:
        return f"The lookup table has no measured {sex} {species} penguins to compare with."
    p = placement
    among = f"the {p.n} {p.sex} {p.species} penguins measured (mean {p.mean:,.0f} g"
    if p.z is None:
        return f"{p.grams:,.0f} g, beside {among})."
    side = "above" if p.z >= 0 else "below"
    return (
        f"{p.grams:,.0f} g is {abs(p.z):.1f} standard deviations {side} the mean of "
        f"{among}, standard deviation {p.sd:,.0f} g)."
    )


# The figure is HTML and CSS, not an image: matplotlib took 150-200 ms per drawing here, most of
# the 0.3 s the explorer has to answer an input (Shiny sends all outputs of a change together).
FIGURE_CSS = """
.pf { font-size: 0.85rem; }
.pf-title { text-align: center; margin-bottom: 0.4rem; }
.pf-row { display: flex; align-items: center; height: 2.2rem; }
.pf-label { width: 8rem; text-align: right; padding-right: 0.6rem; }
.pf-track, .pf-axis { position: relative; flex: 1; height: 100%; }
.pf-axis { height: 1.4rem; margin-left: 8rem; border-top: 1px solid #555; }
.pf-band2, .pf-band1 { position: absolute; top: 20%; height: 60%; }
.pf-band2 { background: rgba(31, 111, 139, 0.2); }
.pf-band1 { background: rgba(31, 111, 139, 0.45); }
.pf-other .pf-band2 { background: rgba(140, 150, 155, 0.2); }
.pf-other .pf-band1 { background: rgba(140, 150, 155, 0.45); }
.pf-mean { position: absolute; top: 15%; height: 70%; width: 2px; background: #1f4f63; }
.pf-prediction { position: absolute; top: 50%; width: 0.8rem; height: 0.8rem; background: #c0392b;
  transform: translate(-50%, -50%) rotate(45deg); }
.pf-tick { position: absolute; transform: translateX(-50%); color: #444; }
.pf-caption { text-align: center; color: #444; margin-top: 0.2rem; }
"""
TICK_STEPS = (50, 100, 200, 250, 500, 1000, 2000)


def figure(placement: Placement) -> Tag:
    """Each sex of the species as mean +/- 1 and 2 standard deviations, the prediction marked."""
    groups = sorted(placement.groups, key=lambda r: r["sex"], reverse=True)
    spans = [(r[f"mean_{MEASURE}"], r[f"sd_{MEASURE}"] or 0.0) for r in groups]
    low = min([m - 2 * sd for m, sd in spans] + [placement.grams])
    high = max([m + 2 * sd for m, sd in spans] + [placement.grams])
    pad = (high - low) * 0.05 or 50.0
    low, high = low - pad, high + pad

    def at(grams: float) -> float:  # percent of the track's width
        return (grams - low) / (high - low) * 100

    rows = [_figure_row(row, *span, placement, at) for row, span in zip(groups, spans, strict=True)]
    step = next((s for s in TICK_STEPS if (high - low) / s <= 8), TICK_STEPS[-1])
    ticks = range(int(low // step + 1) * step, int(high) + 1, step)
    axis = ui.div(
        *[ui.span(f"{t:,}", class_="pf-tick", style=f"left: {at(t):.2f}%") for t in ticks],
        class_="pf-axis",
    )
    return ui.div(
        ui.div(f"{placement.species} penguins", class_="pf-title"),
        *rows,
        axis,
        ui.div(
            "body mass (g): mean, +/- 1 and 2 standard deviations; diamond: the prediction",
            class_="pf-caption",
        ),
        class_="pf",
        role="img",
        aria_label=f"{placement.grams:,.0f} g among {placement.species} penguins by sex",
    )


def _figure_row(row: dict, mean: float, sd: float, placement: Placement, at) -> Tag:
    chosen = row["sex"] == placement.sex

    def band(k: int) -> Tag:
        left, right = at(mean - k * sd), at(mean + k * sd)
        return ui.div(class_=f"pf-band{k}", style=f"left: {left:.2f}%; width: {right - left:.2f}%")

    marks = [band(2), band(1), ui.div(class_="pf-mean", style=f"left: {at(mean):.2f}%")]
    if chosen:
        marks.append(
            ui.div(
                class_="pf-prediction",
                style=f"left: {at(placement.grams):.2f}%",
                title=f"the prediction, {placement.grams:,.0f} g",
            )
        )
    return ui.div(
        ui.div(f"{row['sex']} (n={row[f'n_{MEASURE}']})", class_="pf-label"),
        ui.div(*marks, class_="pf-track"),
        class_="pf-row " + ("pf-chosen" if chosen else "pf-other"),
    )


def reload(client: ApiClient) -> str:
    """An admin's reload, said in one sentence."""
    try:
        status = client.reload()
    except ApiProblem as problem:
        return problem.sentence
    serving = f"serving version {status.get('model_version')}"
    if status.get("outcome") == "failed":
        why = (status.get("last_error") or {}).get("summary", "unknown")
        return f"Reload failed ({why}); still {serving}."
    return f"Reloaded ({status.get('outcome')}): {serving}."
