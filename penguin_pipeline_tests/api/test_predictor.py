"""The fast path equals pipeline.predict bit for bit; other model shapes use the pipeline itself."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from penguin_pipeline.api.inputs import Columns
from penguin_pipeline.api.predictor import LinearOneHotPredictor, PipelinePredictor, build_predictor
from penguin_pipeline.processing import modeling

BOUNDS = {"bill_length_mm": (20.0, 80.0)}


def random_columns(rng, categories, n) -> Columns:
    return Columns(
        categorical={c: rng.choice(v, n).tolist() for c, v in categories.items()},
        numeric={"bill_length_mm": rng.uniform(20, 80, n).round(rng.integers(0, 8))},
        single=n == 1)


def frame(columns: Columns) -> pd.DataFrame:
    return pd.DataFrame({**columns.categorical, **columns.numeric})


def test_fast_path_equals_pipeline_predict_exactly_on_many_inputs(fitted):
    fast = LinearOneHotPredictor.compile(fitted.pipeline, modeling.FEATURES)
    assert fast is not None
    rng = np.random.default_rng(42)
    checked = 0
    for n in [1] * 200 + [2, 3, 7, 16, 100, 257, 1000, 1000, 4096]:
        columns = random_columns(rng, fitted.categories, n)
        expected = fitted.pipeline.predict(frame(columns)).tolist()
        assert fast.predict(columns) == expected  # equality of floats, not approx
        checked += n
    assert checked > 6000


def test_build_predictor_picks_the_fast_path_for_the_book_model(fitted):
    predictor = build_predictor(fitted.pipeline, modeling.FEATURES, fitted.categories, BOUNDS)
    assert predictor.kind == "linear-onehot"


def test_other_model_shapes_go_through_the_pipeline(fitted):
    data = pd.DataFrame({"species": ["Adelie", "Gentoo", "Chinstrap"] * 10, "sex": ["male", "female"] * 15,
                         "bill_length_mm": np.linspace(30, 60, 30)})
    y = np.linspace(3000, 6000, 30)
    scaled = Pipeline([
        ("encode", ColumnTransformer([("categories", OneHotEncoder(drop="first"), ["species", "sex"])],
                                     remainder=StandardScaler(), verbose_feature_names_out=False)),
        ("regress", LinearRegression())]).fit(data, y)
    assert LinearOneHotPredictor.compile(scaled, modeling.FEATURES) is None
    predictor = build_predictor(scaled, modeling.FEATURES, fitted.categories, BOUNDS)
    assert isinstance(predictor, PipelinePredictor)
    columns = random_columns(np.random.default_rng(1), fitted.categories, 50)
    assert predictor.predict(columns) == scaled.predict(frame(columns)).tolist()
