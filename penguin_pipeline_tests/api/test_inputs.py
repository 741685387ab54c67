"""Every input gets a clear answer: columns, or an InputError with status and located messages."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from penguin_pipeline.api.inputs import InputError, InputRules, parse_json, parse_records

RULES = InputRules.for_model({"species": ["Adelie", "Chinstrap", "Gentoo"], "sex": ["female", "male"]},
                             ["bill_length_mm"], max_batch=100)
GOOD = {"species": "Gentoo", "sex": "male", "bill_length_mm": 45.1}


def refused(body: str | bytes) -> InputError:
    with pytest.raises(InputError) as info:
        parse_records(parse_json(body.encode() if isinstance(body, str) else body), RULES)
    return info.value


def test_one_record_and_a_batch_become_columns():
    one = parse_records(GOOD, RULES)
    assert one.single and len(one) == 1 and one.categorical["species"] == ["Gentoo"]
    batch = parse_records([GOOD, {**GOOD, "bill_length_mm": 40, "extra": "ignored"}], RULES)
    assert not batch.single and batch.numeric["bill_length_mm"].tolist() == [45.1, 40.0]


def test_bounds_are_the_physical_ones_not_the_training_range():
    assert RULES.bounds == {"bill_length_mm": (20.0, 80.0)}
    parse_records({**GOOD, "bill_length_mm": 20}, RULES)  # inclusive, and outside the training 32..60
    parse_records({**GOOD, "bill_length_mm": 80.0}, RULES)


@pytest.mark.parametrize("body, where, words", [
    ('{"species": "Emperor", "sex": "male", "bill_length_mm": 45}', ["body", "species"], "Adelie, Chinstrap, Gentoo"),
    ('[{"species": "Gentoo", "sex": "m", "bill_length_mm": 45}]', ["body", 0, "sex"], "female, male"),
    ('[{"species": "Gentoo", "sex": "male", "bill_length_mm": -1}]', ["body", 0, "bill_length_mm"], "20 to 80"),
    ('[{"species": "Gentoo", "sex": "male", "bill_length_mm": 81}]', ["body", 0, "bill_length_mm"], "20 to 80"),
    ('[{"species": "Gentoo", "sex": "male", "bill_length_mm": "45"}]', ["body", 0, "bill_length_mm"], "must be a number"),
    ('[{"species": "Gentoo", "sex": "male", "bill_length_mm": true}]', ["body", 0, "bill_length_mm"], "must be a number"),
    ('[{"species": "Gentoo", "sex": "male", "bill_length_mm": null}]', ["body", 0, "bill_length_mm"], "got null"),
    ('[{"species": 3, "sex": "male", "bill_length_mm": 45}]', ["body", 0, "species"], "must be a string"),
    ('[{"species": ["Gentoo"], "sex": "male", "bill_length_mm": 45}]', ["body", 0, "species"], "got a list"),
    ('[{"sex": "male", "bill_length_mm": 45}]', ["body", 0, "species"], "field required"),
    ('[{"species": "Gentoo", "sex": "male", "bill_length_mm": 1e999}]', ["body", 0, "bill_length_mm"], "outside"),
    ('[{"species": "Gentoo", "sex": "male", "bill_length_mm": 1' + "0" * 500 + '}]', ["body", 0, "bill_length_mm"], "huge"),
    ('[{"species": "Gentoo", "sex": "male", "bill_length_mm": NaN}]', ["body"], "not valid JSON"),
    ('[1, 2]', ["body", 0], "must be a JSON object"),
    ('"Gentoo"', ["body"], "expected a JSON object"),
    ('[]', ["body"], "at least one record"),
    ('', ["body"], "empty"),
    ('{"species": ', ["body"], "not valid JSON"),
    ('[' * 50_000, ["body"], "not valid JSON"),
])
def test_each_problem_is_a_422_that_says_where_and_what(body, where, words):
    error = refused(body)
    assert error.status == 422
    assert error.errors[0]["loc"] == where and words in error.errors[0]["msg"], error.errors


def test_bad_bytes_are_malformed_json():
    assert refused(b"\xff\xfe{").status == 422


def test_more_records_than_the_limit_is_413():
    error = refused(json.dumps([GOOD] * 101))
    assert error.status == 413 and "limit is 100" in error.errors[0]["msg"]
    assert len(parse_records([GOOD] * 100, RULES)) == 100


def test_many_problems_are_listed_up_to_a_cap():
    error = refused(json.dumps([{**GOOD, "species": "Emperor"}] * 50))
    assert len(error.errors) == 21 and "30 more" in error.errors[-1]["msg"]


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=12)
    | st.sampled_from(["Adelie", "Gentoo", "male", "female"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.sampled_from(["species", "sex", "bill_length_mm", "x"]), children, max_size=4),
    max_leaves=20)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(json_values)
def test_any_json_gives_columns_or_an_input_error(value):
    body = json.dumps(value).encode()
    try:
        columns = parse_records(parse_json(body), RULES)
    except InputError as error:
        assert error.status in (413, 422) and error.errors and all(e["msg"] for e in error.errors)
    else:
        assert len(columns) >= 1
