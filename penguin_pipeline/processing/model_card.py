"""A model version's model card: the sections of vetiver's model card template, filled from the
version's pin metadata and the monitoring so far. One function builds it; the report shows it and
the API serves it (`GET /model-card`, JSON or HTML).

The texts on intended use, limitations and ethics are written for this data (Palmer Station LTER
penguins); the figures come from the version itself, never from a newer one.
"""

from __future__ import annotations

import pandas as pd

from .features import TARGET, FeatureSpec
from .monitoring import ALL_SPECIES, metric_values

INTENDED_USE = [
    "Estimate the body mass (g) of an adult Adelie, Chinstrap or Gentoo penguin of the Palmer "
    "Archipelago from its species, sex and bill length, as the book's lab model: for teaching, for "
    "checking field records for implausible masses, and for filling gaps in summaries where a "
    "bird was measured but not weighed.",
    "Not for decisions about an individual bird's health or handling: weigh the bird.",
]
LIMITATIONS = [
    "Trained on three species from three islands of the Palmer Archipelago, measured at the start "
    "of the breeding season (clutch initiation); other species, colonies or times of year are "
    "outside what it has seen, and a category it was not trained on is refused by the API.",
    "One slope for bill length shared by every species and sex, and no other measurement: the "
    "residual error is a few hundred grams, larger than the difference between many individuals.",
    "Birds whose sex was not recorded cannot be predicted (sex is a required input); rows with a "
    "missing value were left out of training, so the model knows nothing about why they are "
    "missing.",
    "Chinstrap penguins were sampled on one island only and are the fewest: their per-species "
    "figures rest on fewer rows than the others'.",
    "Each field season can differ (food, weather, a new instrument): the monitoring section shows "
    "how this version did on seasons after its training data; trust it less when they degrade "
    "or inputs drift.",
]
ETHICS = [
    "The data are observations of wild animals taken under research permits by the Palmer Station "
    "LTER (Gorman, Williams and Fraser 2014), published openly through the Environmental Data "
    "Initiative; cite them when using the model.",
    "Nothing here identifies a person. Individual bird IDs are not model inputs.",
    "Predictions must not replace weighing where a bird's welfare is at stake, and should not be "
    "used to argue about a colony's condition without the measured data.",
]


def model_card(facts: dict, metrics: pd.DataFrame | None, decision: dict | None) -> dict:
    """The card of the version whose pin metadata is `facts`; `metrics`: the monitoring rows so
    far (DuckDB's model_metrics or the metrics pin), `decision`: the newest promotion decision."""
    version = facts["version"]
    return {
        "model_details": _details(facts, decision),
        "intended_use": INTENDED_USE,
        "training_data": _training_data(facts),
        "features": _features(facts),
        "metrics": {
            "evaluated_on": "the held-out rows of the newest season in its training data",
            **(facts.get("holdout_metrics") or {}),
        },
        "monitoring": monitoring_of(metrics, version),
        "limitations": LIMITATIONS,
        "ethical_considerations": ETHICS,
    }


def _details(facts: dict, decision: dict | None) -> dict:
    champion = (decision or {}).get("champion")
    return {
        "name": "penguin_model",
        "version": facts["version"],
        "created": str(facts.get("created")),
        "trained_by": facts.get("trained_by", "not recorded (pinned before model cards)"),
        "data_snapshot": facts.get("data_snapshot"),
        "model": "linear regression (scikit-learn Pipeline: one-hot encoding, LinearRegression), "
        "versioned with vetiver and stored with pins",
        "target": f"{TARGET} (g)",
        "champion": champion == facts["version"] if champion else None,
        "r2_training": facts.get("r2"),
        "rmse_training_g": facts.get("rmse"),
    }


def _training_data(facts: dict) -> dict:
    rows = facts.get("rows") or {}
    holdout = facts.get("holdout") or {}
    excluded = []
    if rows:
        excluded.append(
            {
                "rows": rows["missing_values"],
                "why": "a missing value in species, sex, bill length or body mass",
            }
        )
        excluded.append(
            {
                "rows": rows["held_out"],
                "why": f"held out of season {holdout.get('season')} "
                f"({holdout.get('share', 0):.0%} of its complete rows, chosen by a hash of "
                "their content) to evaluate this version and the next",
            }
        )
    return {
        "seasons": facts.get("seasons", []),
        "rows_in_table": rows.get("rows_in_table"),
        "rows_used": facts.get("rows_used"),
        "rows_excluded": excluded,
        "source": "Palmer Station LTER penguin data (palmerpenguins' penguins_raw layout), "
        "cleaned to palmerpenguins' penguins table",
    }


def _features(facts: dict) -> list[dict]:
    spec = FeatureSpec.from_metadata(facts)
    described = []
    for name, values in spec.categories.items():
        described.append(
            {
                "name": name,
                "kind": "categorical",
                "values": list(values),
                "encoding": f"one column per value after the first ({values[0]}, the baseline)",
            }
        )
    for name, (low, high) in spec.bounds.items():
        described.append(
            {
                "name": name,
                "kind": "numeric",
                "accepted_range": [low, high],
                "encoding": "as measured (mm), one coefficient",
            }
        )
    return described


def monitoring_of(metrics: pd.DataFrame | None, version: str) -> list[dict]:
    """This version's out-of-time metrics per season, overall: [{season, rmse, r2, mae, rows}]."""
    if metrics is None or metrics.empty:
        return []
    frame = metrics.rename(columns={"n": "n_rows"})
    frame = frame[(frame["model_version"] == version) & (frame["species"] == ALL_SPECIES)]
    return [
        {"season": int(season), **metric_values(rows)}
        for season, rows in frame.groupby("season", sort=True)
    ]
