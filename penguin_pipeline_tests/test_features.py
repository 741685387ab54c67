"""The model's one home: the feature specification, its encoding (scikit-learn and DuckDB give the
same coefficients), its validators (readable errors; the fast one accepts exactly what the declared
pydantic model accepts), and the predictor built from pinned numbers (bit-equal to the pipeline)."""

from __future__ import annotations

import dataclasses
import json

import msgspec
import numpy as np
import pandas as pd
import pydantic
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from penguin_pipeline.processing import modeling, tables
from penguin_pipeline.processing.features import (
    FeatureSpec,
    InputError,
    LinearPredictor,
    pinned_predictor,
)
from penguin_pipeline.storage import boards

from .test_cleaning import clean_shipped

SPEC = FeatureSpec(
    {"species": ("Adelie", "Chinstrap", "Gentoo"), "sex": ("female", "male")},
    {"bill_length_mm": (20.0, 80.0)},
    {"species": "Adelie", "sex": "female", "bill_length_mm": 37.0},
)
GOOD = {"species": "Gentoo", "sex": "male", "bill_length_mm": 45.1}


@pytest.fixture(scope="module")
def shipped():
    import duckdb

    with clean_shipped(duckdb.connect()) as con:
        yield con, modeling.fit_model(modeling.load_training_frame(con, tables.CLEAN))


def pin_and_read(tmp_path, fitted):
    board = boards.board_from_url(str(tmp_path / "board"))
    version = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    return boards.read_model(board, version=version)  # stock VetiverModel.from_pin


def refused(body: str | bytes, spec: FeatureSpec = SPEC, max_batch: int = 100) -> InputError:
    with pytest.raises(InputError) as info:
        spec.parse(body.encode() if isinstance(body, str) else body, max_batch)
    return info.value


# --- the specification and the encoding -------------------------------------------------------


def test_the_spec_comes_from_the_training_data(shipped):
    _, fitted = shipped
    spec = fitted.spec
    assert spec.categories == {
        "species": ("Adelie", "Chinstrap", "Gentoo"),
        "sex": ("female", "male"),
    }
    con, _ = shipped
    [(shortest, longest)] = con.execute(
        f"SELECT min(bill_length_mm), max(bill_length_mm) FROM {tables.CLEAN}"
        " WHERE body_mass_g IS NOT NULL AND sex IS NOT NULL"
    ).fetchall()
    assert (shortest, longest) == (32.1, 59.6)  # the shipped file's trained-on bills
    # A tenth of that 27.5 mm range on each side, rounded outwards to 0.1 mm.
    assert spec.bounds == {"bill_length_mm": (29.3, 62.4)}
    assert spec.encoded_names == [
        "species_Chinstrap",
        "species_Gentoo",
        "sex_male",
        "bill_length_mm",
    ]
    assert set(spec.example) == {"species", "sex", "bill_length_mm"}


def test_scikit_learn_and_duckdb_normal_equations_give_the_same_coefficients(shipped):
    con, fitted = shipped
    sql = modeling.fit_all_rows_sql(con, tables.CLEAN, 1, 0.0, fitted.spec)  # every row, no holdout
    assert sql == pytest.approx(fitted.coefficients, rel=1e-9)
    assert list(sql) == ["intercept", *fitted.spec.encoded_names]


def test_normal_equations_from_stratum_sums_equal_the_per_row_sums_of_the_design(shipped):
    """Per-stratum sums stand in for a scan of the design: the same X'X, X'y, y'y and count as
    summing spec.sql_design row by row, held-out part too, with a category the spec has never
    seen (a species left out of it encodes as the baseline, all dummies 0, as in SQL)."""
    con, fitted = shipped
    spec = dataclasses.replace(
        fitted.spec, categories={**fitted.spec.categories, "species": ("Adelie", "Gentoo")}
    )
    pool, held = modeling.normal_equations(con, tables.CLEAN, 7, 0.3, spec)
    design = list(spec.sql_design().values())
    columns = [*design, "body_mass_g::DOUBLE"]
    sums = [f"sum(({a}) * ({b}))" for a in columns for b in columns]
    complete = modeling._complete(tables.CLEAN, 7)  # the rows both fits see, u included
    for part, held_out in ((pool, False), (held, True)):
        *products, rows = con.execute(
            f"SELECT {', '.join(sums)}, count(*) FROM {complete} WHERE (u < 0.3) = {held_out}"
        ).fetchall()[0]
        k = len(columns)
        every = np.array(products, dtype=float).reshape(k, k)
        assert part.rows == rows > 0
        assert part.xtx == pytest.approx(every[:-1, :-1], rel=1e-9)
        assert part.xty == pytest.approx(every[:-1, -1], rel=1e-9)
        assert part.yty == pytest.approx(every[-1, -1], rel=1e-9)


def test_the_pin_carries_spec_and_coefficients_and_stock_vetiver_reads_it(shipped, tmp_path):
    _, fitted = shipped
    model = pin_and_read(tmp_path, fitted)
    predictor = pinned_predictor(model)
    assert predictor.spec.categories == fitted.spec.categories
    assert (
        predictor.spec.bounds == fitted.spec.bounds
        and predictor.spec.example == fitted.spec.example
    )
    regression = fitted.pipeline[-1]
    assert predictor.coefficients.tolist() == regression.coef_.tolist()  # exact, through YAML
    assert predictor.intercept == regression.intercept_
    assert model.prototype.model_json_schema()["properties"].keys() == set(fitted.spec.fields)


def test_the_predictor_equals_pipeline_predict_bit_for_bit(shipped, tmp_path):
    _, fitted = shipped
    predictor = pinned_predictor(pin_and_read(tmp_path, fitted))
    rng = np.random.default_rng(42)
    checked = 0
    for n in [1] * 200 + [2, 3, 7, 16, 100, 257, 1000, 1000, 4096]:
        columns = {f: rng.choice(v, n).tolist() for f, v in fitted.spec.categories.items()}
        columns["bill_length_mm"] = rng.uniform(20, 80, n).round(rng.integers(0, 8)).tolist()
        records = [predictor.spec.record(*values) for values in zip(*columns.values(), strict=True)]
        assert predictor.predict(records) == fitted.pipeline.predict(pd.DataFrame(columns)).tolist()
        checked += n
    assert checked > 6000


def test_a_new_category_needs_no_code_change(shipped, tmp_path):
    con, _ = shipped
    frame = modeling.load_training_frame(con, tables.CLEAN)
    emperors = frame[frame["species"] == "Gentoo"].head(30).assign(species="Emperor")
    emperors["body_mass_g"] += 20_000
    fitted = modeling.fit_model(pd.concat([frame, emperors], ignore_index=True))
    predictor = pinned_predictor(pin_and_read(tmp_path, fitted))
    assert predictor.spec.categories["species"] == ("Adelie", "Chinstrap", "Emperor", "Gentoo")
    parsed = predictor.spec.parse(json.dumps({**GOOD, "species": "Emperor"}).encode(), 10)
    assert parsed.single and predictor.predict(parsed.records)[0] > 20_000
    schema = predictor.spec.record_model.model_json_schema()
    assert "Emperor" in schema["properties"]["species"]["enum"]


def test_a_pin_from_before_the_spec_travelled_is_still_served(shipped, tmp_path):
    _, fitted = shipped
    model = pin_and_read(tmp_path, fitted)
    for key in ("inputs", "predictor"):
        del model.metadata.user[key]
    predictor = pinned_predictor(model)
    assert predictor.spec.categories == fitted.spec.categories and predictor.spec.example == {}
    assert predictor.coefficients.tolist() == fitted.pipeline[-1].coef_.tolist()


def test_pinned_coefficients_that_disagree_with_the_pipeline_are_refused(shipped, tmp_path):
    _, fitted = shipped
    model = pin_and_read(tmp_path, fitted)
    model.metadata.user["predictor"]["intercept"] += 1.0
    with pytest.raises(ValueError, match="do not reproduce"):
        pinned_predictor(model)
    model.metadata.user["predictor"]["columns"].reverse()
    with pytest.raises(ValueError, match="the spec encodes"):
        LinearPredictor.from_metadata(
            model.metadata.user, FeatureSpec.from_metadata(model.metadata.user)
        )


# --- validation ---------------------------------------------------------------------------------


def test_one_record_and_a_batch_become_records_and_their_design_matrix():
    one = SPEC.parse(json.dumps(GOOD).encode(), 100)
    assert one.single and one.records == [SPEC.record("Gentoo", "male", 45.1)]
    assert one.matrix.tolist() == SPEC.design_matrix(one.records).tolist()
    body = json.dumps([GOOD, {**GOOD, "bill_length_mm": 40, "extra": "ignored"}]).encode()
    batch = SPEC.parse(body, 100)
    assert not batch.single and [r.bill_length_mm for r in batch.records] == [45.1, 40.0]
    assert type(batch.records[1].bill_length_mm) is float
    assert batch.matrix.tolist() == SPEC.design_matrix(batch.records).tolist()
    SPEC.parse(json.dumps({**GOOD, "bill_length_mm": 20}).encode(), 100)  # bounds are inclusive
    SPEC.parse(json.dumps({**GOOD, "bill_length_mm": 80.0}).encode(), 100)


ONE = '{"species": "Gentoo", "sex": "male", "bill_length_mm": '  # + the measurement + "}"
BATCH = "[" + ONE  # + the measurement + "}]"
SPECIES = "'Adelie', 'Chinstrap' or 'Gentoo'"


@pytest.mark.parametrize(
    "body, where, words",
    [
        (ONE.replace("Gentoo", "Emperor") + "45}", ["body", "species"], SPECIES),
        (BATCH.replace('"male"', '"m"') + "45}]", ["body", 0, "sex"], "'female' or 'male'"),
        (BATCH + "-1}]", ["body", 0, "bill_length_mm"], "greater than or equal to 20"),
        (BATCH + "81}]", ["body", 0, "bill_length_mm"], "less than or equal to 80"),
        (BATCH + "45}, " + ONE + "81}]", ["body", 1, "bill_length_mm"], "less than or equal to 80"),
        (BATCH + "45}, " + ONE + "1e999}]", ["body", 1, "bill_length_mm"], "finite number"),
        (BATCH + '"45"}]', ["body", 0, "bill_length_mm"], "valid number"),
        (BATCH + "true}]", ["body", 0, "bill_length_mm"], "valid number"),
        (BATCH + "null}]", ["body", 0, "bill_length_mm"], "valid number"),
        (BATCH.replace('"Gentoo"', "3") + "45}]", ["body", 0, "species"], SPECIES),
        (BATCH.replace('"Gentoo"', '["Gentoo"]') + "45}]", ["body", 0, "species"], SPECIES),
        ('[{"sex": "male", "bill_length_mm": 45}]', ["body", 0, "species"], "Field required"),
        (BATCH + "1e999}]", ["body", 0, "bill_length_mm"], "finite number"),
        (BATCH + "1" + "0" * 500 + "}]", ["body", 0, "bill_length_mm"], "number"),
        (BATCH + "NaN}]", ["body"], "not valid JSON"),
        ("[1, 2]", ["body", 0], "valid dictionary"),
        ('"Gentoo"', ["body"], "expected a JSON object (one record) or a list of records, got"),
        ("[]", ["body"], "at least 1 item"),
        ("", ["body"], "not valid JSON"),
        ('{"species": ', ["body"], "not valid JSON"),
        ("[" * 50_000, ["body"], "not valid JSON"),
        (b"\xff\xfe{", ["body"], "not valid JSON"),
    ],
)
def test_each_problem_is_an_error_that_says_where_and_what(body, where, words):
    error = refused(body)
    assert not error.too_many
    assert error.errors[0]["loc"] == where and words in error.errors[0]["msg"], error.errors
    json.dumps(error.errors, allow_nan=False)  # always valid JSON (no inf, no huge int echoed)


def test_the_offending_value_is_shown_when_short():
    error = refused('[{"species": "Emperor", "sex": "male", "bill_length_mm": 45}]')
    assert error.errors[0]["input"] == "Emperor"
    assert "input" not in refused('[{"species": "' + "E" * 500 + '"}]').errors[0]


def test_more_records_than_the_limit_is_too_many():
    error = refused(json.dumps([GOOD] * 101))
    assert error.too_many and "limit is 100" in error.errors[0]["msg"]
    error = refused(json.dumps([{"species": "Emperor"}] * 101))  # too many comes first
    assert error.too_many
    assert len(SPEC.parse(json.dumps([GOOD] * 100).encode(), 100).records) == 100


def test_many_problems_are_listed_up_to_a_cap():
    error = refused(json.dumps([{**GOOD, "species": "Emperor"}] * 50))
    assert len(error.errors) == 21 and "30 more" in error.errors[-1]["msg"]
    assert [e["loc"] for e in error.errors[:2]] == [["body", 0, "species"], ["body", 1, "species"]]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=3), children, max_size=3)
    ),
    max_leaves=20,
)


# Records near the boundary: each field valid (edges included) three times in four, else anything.
def mostly(valid: list):
    return st.one_of(*[st.sampled_from(valid)] * 3, json_values)


species = mostly(["Adelie", "Chinstrap", "Gentoo", "Emperor", ""])
edges = [20, 80, 20.0, 80.0, 19.999999, 80.000001, 45.1, 10**20]
fields = {"species": species, "sex": mostly(["female", "male"]), "bill_length_mm": mostly(edges)}
record = st.fixed_dictionaries(fields) | st.fixed_dictionaries(
    {}, optional={**fields, "x": json_values}
)
payloads = record | st.lists(record, max_size=5) | json_values


DECLARED = {
    True: pydantic.TypeAdapter(SPEC.record_model),
    False: pydantic.TypeAdapter(list[SPEC.record_model]),
}


@settings(max_examples=500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(payloads)
def test_the_fast_decoder_accepts_exactly_what_the_declared_model_accepts(value):
    body = json.dumps(value).encode()
    try:
        DECLARED[isinstance(value, dict)].validate_json(body)
        declared = isinstance(value, dict) or (isinstance(value, list) and len(value) > 0)
    except pydantic.ValidationError:
        declared = False
    try:
        records = SPEC.parse(body, 100).records
    except InputError as error:
        assert not declared, f"declared model accepts {value!r}, parse refused: {error.errors}"
        assert error.errors and all(e["msg"] for e in error.errors)
    else:
        assert declared, f"parse accepted {value!r}, the declared model refuses it"
        assert len(records) >= 1


def test_the_decoder_and_the_model_come_from_one_spec():
    with pytest.raises(msgspec.ValidationError):
        SPEC._decoder.decode(b'{"species": "Gentoo", "sex": "female ", "bill_length_mm": 45}')
    assert "less than or equal to 80" in refused(ONE + "80.5}").errors[0]["msg"]
    schema = SPEC.record_model.model_json_schema()["properties"]
    assert schema["bill_length_mm"]["maximum"] == 80.0 and schema["sex"]["enum"] == [
        "female",
        "male",
    ]
