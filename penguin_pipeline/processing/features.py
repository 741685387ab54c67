"""The model's inputs, declared once: the feature specification, its encoding, its validators, and
the linear predictor built from pinned parameters.

A FeatureSpec is made from the training data (the categories seen, the range of each measurement
with a margin, a typical penguin) and travels in the pin's metadata, so a model trained on a new
category is validated, documented and served without a code change. Everything that reads the
features reads the spec:

- scikit-learn's pipeline (modeling.build_pipeline) and the normal equations summed in DuckDB
  (modeling.fit_all_rows_sql) encode with it: one column per category after the first (the
  baseline, OneHotEncoder's drop="first"), then the measurements, in `encoded_names` order;
- the API decodes and validates a body with `parse` (a msgspec struct declared from the spec: one
  pass over the JSON in C; then the measurements' ranges, column by column on the design matrix)
  and, only when that refuses the body, lists every problem with the pydantic model
  `record_model` (declared from the same spec; also the OpenAPI schema);
- LinearPredictor applies the pinned coefficients and intercept to that encoding.
"""

from __future__ import annotations

import functools
import itertools
import math
from dataclasses import dataclass
from operator import attrgetter
from typing import Annotated, Literal, NamedTuple

import msgspec
import numpy as np
import pandas as pd
import pydantic
import pydantic_core

from . import lter

CATEGORICAL = ("species", "sex")
NUMERIC = ("bill_length_mm",)
FEATURES = [*CATEGORICAL, *NUMERIC]
TARGET = "body_mass_g"
# The measurements' physical ranges: the rule every training row passed when it was cleaned.
PHYSICAL_BOUNDS = {name: (low, high) for name, low, high in lter.MEASUREMENTS.values()}
# How far past the training data's range a measurement is still accepted, as a share of that range:
# a line fitted on 32-60 mm bills says little about a 20 mm one, yet a penguin slightly bigger than
# any measured so far is no reason to refuse a prediction.
RANGE_MARGIN = 0.1
MAX_REPORTED_ERRORS = 20


class InputError(ValueError):
    """Input that cannot be predicted: `errors` as FastAPI lists them, or too many records."""

    def __init__(self, errors: list[dict], too_many: bool = False):
        super().__init__(errors[0]["msg"])
        self.errors = errors
        self.too_many = too_many


def _error(loc, msg: str, kind: str, **extra) -> dict:
    return {"loc": ["body", *loc], "msg": msg, "type": kind, **extra}


def typical_record(frame: pd.DataFrame) -> dict:
    """The most common combination of categories, with the median of each measurement within it."""
    combination = frame.groupby(list(CATEGORICAL)).size().idxmax()
    group = frame[(frame[list(CATEGORICAL)] == combination).all(axis=1)]
    typical = dict(zip(CATEGORICAL, combination, strict=True))
    return {**typical, **{c: float(group[c].median()) for c in NUMERIC}}


def accepted_range(values: pd.Series, name: str) -> tuple[float, float]:
    """The training values' range widened by RANGE_MARGIN on each side, rounded outwards to 0.1,
    within the measurement's physical range."""
    low, high = float(values.min()), float(values.max())
    pad = (high - low) * RANGE_MARGIN
    lowest, highest = PHYSICAL_BOUNDS[name]
    return (
        max(lowest, math.floor((low - pad) * 10) / 10),
        min(highest, math.ceil((high + pad) * 10) / 10),
    )


class Parsed(NamedTuple):
    """A request body's records, validated, and their design matrix."""

    records: list
    matrix: np.ndarray  # FeatureSpec.design_matrix(records)
    single: bool  # the body was one record, not a list


@dataclass(frozen=True, eq=False)
class FeatureSpec:
    # field -> allowed values, sorted; the first is the baseline
    categories: dict[str, tuple[str, ...]]
    bounds: dict[str, tuple[float, float]]  # measurement -> inclusive accepted range
    example: dict  # a typical penguin, for the documentation

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> FeatureSpec:
        categories = {c: tuple(sorted(frame[c].unique().tolist())) for c in CATEGORICAL}
        bounds = {c: accepted_range(frame[c], c) for c in NUMERIC}
        return cls(categories, bounds, typical_record(frame))

    @classmethod
    def from_metadata(cls, user: dict) -> FeatureSpec:
        if "inputs" in user:  # a list, in encoding order (the pin's YAML sorts mapping keys)
            fields, example = user["inputs"]["fields"], user["inputs"].get("example") or {}
            return cls(
                {f["name"]: tuple(f["categories"]) for f in fields if "categories" in f},
                {f["name"]: (float(f["min"]), float(f["max"])) for f in fields if "min" in f},
                {f["name"]: example[f["name"]] for f in fields if f["name"] in example},
            )
        # A pin written before the spec travelled with it: its categories, and the physical bounds.
        categories, features = user["categories"], user["features"]
        return cls(
            {f: tuple(categories[f]) for f in features if f in categories},
            {f: PHYSICAL_BOUNDS[f] for f in features if f not in categories},
            {},
        )

    def to_metadata(self) -> dict:
        categorical = [{"name": f, "categories": list(v)} for f, v in self.categories.items()]
        numeric = [{"name": f, "min": low, "max": high} for f, (low, high) in self.bounds.items()]
        return {"fields": categorical + numeric, "example": self.example}

    @property
    def fields(self) -> list[str]:
        return [*self.categories, *self.bounds]

    # --- the encoding ----------------------------------------------------------------------

    @functools.cached_property
    def encoded_names(self) -> list[str]:
        dummies = [f"{f}_{v}" for f, values in self.categories.items() for v in values[1:]]
        return dummies + list(self.bounds)

    def sql_design(self) -> dict[str, str]:
        """A DuckDB expression for the intercept and each encoded column."""
        design = {"intercept": "1.0"}
        for f, values in self.categories.items():
            for v in values[1:]:
                design[f"{f}_{v}"] = f"({lter.quote(f)} = {lter.literal(v)})::DOUBLE"
        design.update({f: f"{lter.quote(f)}::DOUBLE" for f in self.bounds})
        return design

    @functools.cached_property
    def _codes(self) -> dict[str, dict[str, int]]:
        """Per category field: value -> its position among the field's values (0: the baseline)."""
        return {f: {v: i for i, v in enumerate(values)} for f, values in self.categories.items()}

    def design_matrix(self, records: list) -> np.ndarray:
        """float64, C order, columns in `encoded_names` order: what the ColumnTransformer makes."""
        return self._one_row(records[0]) if len(records) == 1 else self._matrix(records)

    def _matrix(self, records: list) -> np.ndarray:
        n = len(records)
        X = np.empty((n, len(self.encoded_names)))
        j = 0
        for f, index in self._codes.items():
            codes = np.fromiter(map(index.__getitem__, map(attrgetter(f), records)), np.intp, n)
            # one column per value after the baseline; a comparison, not a lookup of one-hot
            # rows (codes into an identity block): a 1000-record batch's ~4 us, not ~15 per field
            for code in range(1, len(index)):
                X[:, j] = codes == code
                j += 1
        for f in self.bounds:
            X[:, j] = np.fromiter(map(attrgetter(f), records), np.float64, n)
            j += 1
        return X

    def _one_row(self, record) -> np.ndarray:
        """The same 1-row matrix, from a copy of its categories' cached one-hot row: a single
        prediction (the API's common case) spends ~1 us here instead of ~7 in numpy's calls."""
        key = tuple(getattr(record, f) for f in self.categories)
        if (row := self._rows.get(key)) is None:
            row = self._rows[key] = self._matrix([record])
        row = row.copy()
        for j, f in enumerate(self.bounds, len(self.encoded_names) - len(self.bounds)):
            row[0, j] = getattr(record, f)  # a scalar's assignment: no array made of a list
        return row

    @functools.cached_property
    def _rows(self) -> dict[tuple, np.ndarray]:
        return {}

    def grid(self) -> list:
        """Every combination of categories with each measurement at its bounds and midpoint."""
        levels = [
            *self.categories.values(),
            *[(lo, (lo + hi) / 2, hi) for lo, hi in self.bounds.values()],
        ]
        return [self.record(*values) for values in itertools.product(*levels)]

    # --- validation --------------------------------------------------------------------------

    @functools.cached_property
    def record_model(self) -> type[pydantic.BaseModel]:
        """One record, declared for pydantic: strict (no "45" for 45, no true for 1)."""
        fields = {
            f: (Literal[values], pydantic.Field(description=f"one of {', '.join(values)}"))
            for f, values in self.categories.items()
        }
        fields.update(
            {
                f: (
                    float,
                    pydantic.Field(
                        ge=lo, le=hi, allow_inf_nan=False, description=f"{lo:g} to {hi:g}"
                    ),
                )
                for f, (lo, hi) in self.bounds.items()
            }
        )
        extra = {"example": self.example} if self.example else None
        config = pydantic.ConfigDict(strict=True, json_schema_extra=extra)
        return pydantic.create_model("PenguinRecord", __config__=config, **fields)

    @functools.cached_property
    def _adapters(self) -> dict[type, pydantic.TypeAdapter]:
        many = Annotated[list[self.record_model], pydantic.Field(min_length=1)]
        return {dict: pydantic.TypeAdapter(self.record_model), list: pydantic.TypeAdapter(many)}

    @functools.cached_property
    def record(self) -> type[msgspec.Struct]:
        """One record, declared for msgspec, which decodes JSON and checks its types and categories
        in one pass (in C). The measurements' ranges are checked on the design matrix's columns
        (`parse`): in msgspec, they cost a 1000-record batch ~65 us of its ~250."""
        fields = [(f, Literal[values]) for f, values in self.categories.items()]
        fields += [(f, float) for f in self.bounds]
        # gc=False: a record holds a few str and float (no cycle), and a big batch of them then
        # sets off no garbage collection.
        return msgspec.defstruct("PenguinRecord", fields, gc=False)

    @functools.cached_property
    def _decoder(self) -> msgspec.json.Decoder:
        many = Annotated[list[self.record], msgspec.Meta(min_length=1)]
        return msgspec.json.Decoder(self.record | many)

    def parse(self, body: bytes, max_batch: int) -> Parsed:
        """The records of a JSON record or non-empty list of them, their design matrix, and whether
        it was one record.

        InputError says what is wrong, record by record, field by field.
        """
        try:
            decoded = self._decoder.decode(body)
        except msgspec.MsgspecError as exc:
            raise self._describe(body, max_batch, str(exc)) from None
        single = not isinstance(decoded, list)
        records = [decoded] if single else decoded
        if len(records) > max_batch:
            raise _too_many(len(records), max_batch)
        matrix = self.design_matrix(records)
        if not self._in_bounds(records, matrix):
            raise self._describe(body, max_batch, "a measurement is out of its accepted range")
        return Parsed(records, matrix, single)

    def _in_bounds(self, records: list, matrix: np.ndarray) -> bool:
        """Every measurement within its inclusive range (NaN and infinity are not: a NaN makes a
        column's min and max NaN, which compares false)."""
        if len(records) == 1:  # plain floats: ~0.3 us, where numpy's calls cost ~5
            record = records[0]
            return all(lo <= getattr(record, f) <= hi for f, (lo, hi) in self.bounds.items())
        measured = matrix[:, len(self.encoded_names) - len(self.bounds) :].T
        return all(
            lo <= column.min() and column.max() <= hi
            for column, (lo, hi) in zip(measured, self.bounds.values(), strict=True)
        )

    def _describe(self, body: bytes, max_batch: int, fallback: str) -> InputError:
        try:
            payload = pydantic_core.from_json(body, allow_inf_nan=False)
        except ValueError as exc:
            return InputError(
                [_error([], f"the request body is not valid JSON: {exc}", "json_invalid")]
            )
        if isinstance(payload, list) and len(payload) > max_batch:
            return _too_many(len(payload), max_batch)
        if type(payload) not in self._adapters:
            kinds = {str: "a string", bool: "a boolean", type(None): "null"}
            kind = kinds.get(type(payload), "a number")
            msg = f"expected a JSON object (one record) or a list of records, got {kind}"
            return InputError([_error([], msg, "type_error")])
        try:
            self._adapters[type(payload)].validate_python(payload)
        except pydantic.ValidationError as exc:
            errors = [
                _error(e["loc"], e["msg"], e["type"], **_shown(e.get("input")))
                for e in exc.errors(include_url=False, include_context=False)
            ]
        else:  # the declarations disagree (a test guards against it): refuse with msgspec's words
            errors = [_error([], fallback, "value_error")]
        if len(errors) > MAX_REPORTED_ERRORS:
            more = len(errors) - MAX_REPORTED_ERRORS
            errors = errors[:MAX_REPORTED_ERRORS] + [
                _error([], f"... and {more} more problem(s) not listed", "truncated")
            ]
        return InputError(errors)


def _shown(value) -> dict:
    """The offending value, when it is short and plain JSON (no list, object, huge or infinite)."""
    plain = isinstance(value, str) and len(value) <= 100
    plain |= isinstance(value, float) and math.isfinite(value)
    plain |= isinstance(value, int) and abs(value) < 2**53
    return {"input": value} if plain else {}


def _too_many(n: int, limit: int) -> InputError:
    msg = f"{n} records in one request; the limit is {limit}: split the batch"
    return InputError([_error([], msg, "too_long")], too_many=True)


@dataclass(frozen=True, eq=False)
class LinearPredictor:
    """Body mass = intercept + coefficients . encoded features, from the pinned numbers alone.

    Equal bit for bit to the fitted pipeline's predict: the same matrix (values, dtype, order)
    times the same coefficients, plus the same intercept.
    """

    spec: FeatureSpec
    coefficients: np.ndarray  # in spec.encoded_names order
    intercept: float

    @classmethod
    def from_pipeline(cls, pipeline, spec: FeatureSpec) -> LinearPredictor:
        """From a fitted pipeline's public attributes: output feature names, coef_, intercept_."""
        names = list(pipeline[:-1].get_feature_names_out())
        if names != spec.encoded_names:
            raise ValueError(
                f"the pipeline encodes {names}; the specification {spec.encoded_names}"
            )
        regression = pipeline[-1]
        return cls(
            spec, np.asarray(regression.coef_, dtype=np.float64), float(regression.intercept_)
        )

    @classmethod
    def from_metadata(cls, user: dict, spec: FeatureSpec) -> LinearPredictor:
        params = user["predictor"]
        if params["columns"] != spec.encoded_names:
            raise ValueError(
                f"coefficients for {params['columns']}; the spec encodes {spec.encoded_names}"
            )
        return cls(
            spec, np.array(params["coefficients"], dtype=np.float64), float(params["intercept"])
        )

    def to_metadata(self) -> dict:
        return {
            "kind": "linear",
            "columns": self.spec.encoded_names,
            "coefficients": self.coefficients.tolist(),
            "intercept": self.intercept,
        }

    def predict(self, records: list) -> list[float]:
        return np.asarray(self.predict_matrix(self.spec.design_matrix(records))).tolist()

    def predict_matrix(self, matrix: np.ndarray) -> np.ndarray | list[float]:
        """From a design matrix (FeatureSpec.design_matrix, or Parsed.matrix). One row (the API's
        common case) comes back as a list of one float, its intercept added by Python: the same
        IEEE sum, where numpy's `+` on an array cost a served request ~1.5 us more (measured in
        the server under wrk: numpy's calls there run with cold caches, several times slower)."""
        products = matrix @ self.coefficients
        if len(products) == 1:
            return [products.item() + self.intercept]
        return products + self.intercept


def pinned_predictor(vetiver_model) -> LinearPredictor:
    """The predictor of a pinned model: specification and parameters from its metadata (a pin
    written before they travelled: from its pipeline), checked against its pickled pipeline on
    every category combination."""
    user = (vetiver_model.metadata.user or {}) if vetiver_model.metadata else {}
    spec = FeatureSpec.from_metadata(user)
    if "predictor" in user:
        predictor = LinearPredictor.from_metadata(user, spec)
    else:
        predictor = LinearPredictor.from_pipeline(vetiver_model.model, spec)
    grid = spec.grid()
    expected = vetiver_model.model.predict(pd.DataFrame(map(msgspec.structs.asdict, grid)))
    if not np.allclose(predictor.predict(grid), expected, rtol=1e-9, atol=1e-6):
        raise ValueError("its pinned coefficients do not reproduce its pipeline's predictions")
    return predictor
