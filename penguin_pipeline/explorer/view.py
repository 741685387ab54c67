"""What the page says, made from the API's answers: plain functions and a matplotlib figure, so
the Shiny server only wires inputs to them (and tests call them without a browser)."""

from __future__ import annotations

from dataclasses import dataclass

from matplotlib.figure import Figure

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


def figure(placement: Placement) -> Figure:
    """Each sex of the species as mean +/- 1 and 2 standard deviations, the prediction marked."""
    fig = Figure(figsize=(7, 2.4))  # Shiny lays it out (tight) itself
    ax = fig.add_subplot()
    groups = sorted(placement.groups, key=lambda r: r["sex"])
    for y, row in enumerate(groups):
        mean, sd = row[f"mean_{MEASURE}"], row[f"sd_{MEASURE}"] or 0.0
        chosen = row["sex"] == placement.sex
        colour = "#1f6f8b" if chosen else "#9aa5ab"
        ax.barh(y, 4 * sd, left=mean - 2 * sd, height=0.5, color=colour, alpha=0.25)
        ax.barh(y, 2 * sd, left=mean - sd, height=0.5, color=colour, alpha=0.5)
        ax.plot([mean, mean], [y - 0.25, y + 0.25], color=colour, linewidth=2)
        if chosen:
            ax.plot(placement.grams, y, marker="D", color="#c0392b", markersize=10, zorder=3)
    ax.set_yticks(
        range(len(groups)), [f"{r['sex']} (n={r[f'n_{MEASURE}']})" for r in groups], fontsize=9
    )
    ax.set_xlabel("body mass (g): mean, +/- 1 and 2 standard deviations; diamond: prediction")
    ax.set_title(f"{placement.species} penguins", fontsize=10)
    ax.spines[["top", "right"]].set_visible(False)
    return fig


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
