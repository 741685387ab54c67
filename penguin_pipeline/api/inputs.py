"""What /predict accepts, as plain functions: raw JSON bytes in, model-ready columns or a readable error out.

A request is one record or a list of records with the natural fields (species, sex,
bill_length_mm). Categories come from the served model's metadata (so they follow the model
version); measurement bounds are the physical ones the cleaning step already enforces
(processing/lter.py MEASUREMENTS), not the training min/max, so a plausible but unseen bill
length is predicted rather than refused.

Batches take a columnar path: pull each field out as a list, check whole columns with set and
numpy operations, and only walk record by record to describe what is wrong when that check fails.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import numpy as np
import orjson

from penguin_pipeline.processing import lter

MAX_REPORTED_ERRORS = 20
# Room per record for field names, whitespace and extra fields a client sends along.
BYTES_PER_RECORD = 512


class InputError(Exception):
    """The request cannot be predicted; `status` is the HTTP code, `errors` FastAPI-style details."""

    def __init__(self, status: int, errors: list[dict]):
        super().__init__(errors[0]["msg"] if errors else "invalid input")
        self.status = status
        self.errors = errors


def _error(loc: list, msg: str, kind: str) -> dict:
    return {"loc": ["body", *loc], "msg": msg, "type": kind}


def physical_bounds() -> dict[str, tuple[float, float]]:
    """Plausible ranges of the numeric inputs, as the cleaning step declares them."""
    return {name: (low, high) for name, low, high in lter.MEASUREMENTS.values()}


@dataclass(frozen=True)
class InputRules:
    categories: dict[str, tuple[str, ...]]  # field -> allowed values
    bounds: dict[str, tuple[float, float]]  # field -> inclusive physical range
    max_batch: int

    @classmethod
    def for_model(cls, categories: dict[str, list[str]], numeric: list[str], max_batch: int) -> InputRules:
        known = physical_bounds()
        missing = [c for c in numeric if c not in known]
        if missing:
            raise ValueError(f"no physical bounds declared for numeric input(s) {missing}")
        return cls(
            categories={k: tuple(v) for k, v in categories.items()},
            bounds={c: known[c] for c in numeric},
            max_batch=max_batch,
        )

    @property
    def fields(self) -> list[str]:
        return [*self.categories, *self.bounds]

    @property
    def max_body_bytes(self) -> int:
        return self.max_batch * BYTES_PER_RECORD + 65_536


@dataclass(frozen=True)
class Columns:
    """Validated input, one entry per record: strings for categories, float64 array per measure."""

    categorical: dict[str, list[str]]
    numeric: dict[str, np.ndarray]
    single: bool  # the request was one record, not a list

    def __len__(self) -> int:
        return len(next(iter(self.numeric.values())))


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json(body: bytes):
    """JSON text to Python values; NaN/Infinity, bad UTF-8 and absurd nesting are malformed input."""
    if not body.strip():
        raise InputError(422, [_error([], "the request body is empty: send a JSON record or a list of records", "json_invalid")])
    try:
        return orjson.loads(body)  # ~6x faster than json on a 1000-record batch; rejects NaN too
    except orjson.JSONDecodeError:
        pass  # the standard parser says more precisely what is wrong (and reads integers beyond 64 bits)
    try:
        return json.loads(body, parse_constant=_refuse_constant)
    except RecursionError:
        problem = "nested too deeply"
    except (ValueError, UnicodeDecodeError) as exc:  # JSONDecodeError is a ValueError
        problem = str(exc)
    raise InputError(422, [_error([], f"the request body is not valid JSON: {problem}", "json_invalid")])


def parse_records(payload, rules: InputRules) -> Columns:
    """One record (a JSON object) or a non-empty list of them, checked against `rules`."""
    single = isinstance(payload, dict)
    records = [payload] if single else payload
    if not isinstance(records, list):
        raise InputError(422, [_error([], f"expected a JSON object (one record) or a list of records, got {_json_type(payload)}", "type_error")])
    if not records:
        raise InputError(422, [_error([], "the list is empty: send at least one record", "too_short")])
    if len(records) > rules.max_batch:
        raise InputError(413, [_error([], f"{len(records)} records in one request; the limit is {rules.max_batch}: split the batch", "too_long")])
    columns = _fast_columns(records, rules, single)
    if columns is None:
        raise InputError(422, _describe_problems(records, rules, single))
    return columns


def _fast_columns(records: list, rules: InputRules, single: bool) -> Columns | None:
    """Whole-column checks; None when anything is off (then the slow path says what)."""
    try:
        categorical = {f: [r[f] for r in records] for f in rules.categories}
        raw_numeric = {f: [r[f] for r in records] for f in rules.bounds}
    except (KeyError, TypeError):  # a missing field, or a record that is not an object
        return None
    for field, values in categorical.items():
        try:
            if not set(values) <= set(rules.categories[field]):
                return None
        except TypeError:  # an unhashable value (list, object)
            return None
    numeric = {}
    for field, values in raw_numeric.items():
        if not set(map(type, values)) <= {float, int}:  # bool, str, None, lists... are refused
            return None
        try:
            array = np.array(values, dtype=np.float64)
        except (OverflowError, ValueError):
            return None
        low, high = rules.bounds[field]
        if not (array.min() >= low and array.max() <= high):  # NaN fails this too
            return None
        numeric[field] = array
    return Columns(categorical=categorical, numeric=numeric, single=single)


def _json_type(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null",
            int: "a number", float: "a number"}.get(type(value), type(value).__name__)


def _describe_problems(records: list, rules: InputRules, single: bool) -> list[dict]:
    errors: list[dict] = []
    skipped = 0
    for index, record in enumerate(records):
        where = [] if single else [index]
        for problem in _record_problems(record, rules, where):
            if len(errors) < MAX_REPORTED_ERRORS:
                errors.append(problem)
            else:
                skipped += 1
    if skipped:
        errors.append(_error([], f"... and {skipped} more problem(s) not listed", "truncated"))
    return errors


def _record_problems(record, rules: InputRules, where: list):
    if not isinstance(record, dict):
        yield _error(where, f"a record must be a JSON object with fields {rules.fields}, got {_json_type(record)}", "type_error")
        return
    for field, allowed in rules.categories.items():
        if field not in record:
            yield _error([*where, field], f"field required: {field} (one of {', '.join(allowed)})", "missing")
            continue
        value = record[field]
        if not isinstance(value, str):
            yield _error([*where, field], f"{field} must be a string, one of {', '.join(allowed)}; got {_json_type(value)}", "string_type")
        elif value not in allowed:
            yield _error([*where, field], f"{field} {value[:60]!r} is not one of the allowed values: {', '.join(allowed)}", "enum")
    for field, (low, high) in rules.bounds.items():
        if field not in record:
            yield _error([*where, field], f"field required: {field} (a number from {low:g} to {high:g})", "missing")
            continue
        value = record[field]
        if type(value) not in (int, float):
            yield _error([*where, field], f"{field} must be a number from {low:g} to {high:g}; got {_json_type(value)}", "float_type")
        elif not (low <= value <= high) or (isinstance(value, float) and math.isnan(value)):
            shown = f"{value:g}" if isinstance(value, float) else (str(value) if abs(value) < 10**15 else "a huge number")
            yield _error([*where, field], f"{field} {shown} is outside the plausible range {low:g} to {high:g}", "out_of_range")
