"""The model pin: vetiver layout, UTC versions that always increase."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest

from penguin_pipeline.processing import modeling
from penguin_pipeline.storage import boards

from .test_summary_and_model import clean  # noqa: F401  (fixture)


def fitted_model(clean):  # noqa: F811
    from penguin_pipeline.processing import tables

    return modeling.fit_model(modeling.load_training_frame(clean, tables.CLEAN))


def test_versions_written_in_the_same_second_stay_in_order(clean, tmp_path):  # noqa: F811
    board = boards.board_from_url(str(tmp_path / "board"))
    fitted = fitted_model(clean)
    written = []
    for _ in range(4):  # well within one second: pins alone would order these by hash
        written.append(boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, "m")))
    assert written == sorted(written) and len(set(written)) == 4
    assert board.pin_meta("m").version.version == written[-1]


def test_created_is_utc(clean, tmp_path):  # noqa: F811
    board = boards.board_from_url(str(tmp_path / "board"))
    before = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    boards.write_vetiver_pin(board, modeling.to_vetiver(fitted_model(clean), "m"))
    created = board.pin_meta("m").version.created
    assert before <= created <= datetime.now(UTC).replace(tzinfo=None)


def test_pin_reads_back_as_a_vetiver_model_with_our_metadata(clean, tmp_path):  # noqa: F811
    board = boards.board_from_url(str(tmp_path / "board"))
    fitted = fitted_model(clean)
    version = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    model = boards.read_model(board)
    assert model.metadata.version == version
    assert model.metadata.user["data_snapshot"] == fitted.data_snapshot
    assert set(model.prototype.model_fields) == {"species", "sex", "bill_length_mm"}
    frame = pd.DataFrame([{"species": "Adelie", "sex": "female", "bill_length_mm": 38.0}])
    assert model.model.predict(frame)[0] == fitted.pipeline.predict(frame)[0]
    facts = boards.latest_model_facts(board)
    assert facts["version"] == version and facts["r2"] == round(fitted.r2, 6)


def test_a_version_being_written_by_another_run_keeps_its_name(tmp_path):
    board = boards.board_from_url(str(tmp_path / "board"))
    board.pin_write({"a": 1}, "decision", type="json")
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    for second in (now, now + timedelta(seconds=1)):  # other writers' folders, no data.txt yet
        folder = tmp_path / "board" / "decision" / f"{second:%Y%m%dT%H%M%SZ}-abcde"
        folder.mkdir()
        (folder / "decision.json").write_text('{"a": 2}')
    assert boards.next_created(board, "decision", now) == now + timedelta(seconds=2)


@pytest.mark.parametrize("write", ["pin_write", "pin_upload"])
def test_a_write_whose_version_name_was_just_taken_takes_the_next_second(
    tmp_path, monkeypatch, write
):
    """Two runs at once pinning the same content in the same second: the other run creates the
    version folder between this write choosing its name and storing it; pins itself refuses the
    existing folder, and the board writes again under the next free second. (A retry under the
    same name would meet the same folder and fail.) Both ways of writing: an object (the model,
    decisions) and a file (the report: seen failing on the lake, where runs render at once)."""
    board = boards.board_from_url(str(tmp_path / "board"))
    source = tmp_path / "decision.json"
    source.write_text('{"a": 1}')
    prepare = boards.PenguinBoard.prepare_pin_version
    taken = []

    def another_run_takes_the_name(self, pin_dir_path, x, name, *args, **kwargs):
        meta = prepare(self, pin_dir_path, x, name, *args, **kwargs)
        if not taken:  # the other run's half-written version: its data, no data.txt yet
            taken.append(meta.version)
            folder = tmp_path / "board" / name / meta.version.version
            folder.mkdir(parents=True)
            (folder / "decision.json").write_text('{"a": 1}')
        return meta

    monkeypatch.setattr(boards.PenguinBoard, "prepare_pin_version", another_run_takes_the_name)
    if write == "pin_write":
        meta = board.pin_write({"a": 1}, "decision", type="json")
    else:
        meta = board.pin_upload(str(source), "decision")
    (lost,) = taken
    assert meta.version.created == lost.created + timedelta(seconds=1)
    assert meta.version.version != lost.version and meta.version.hash == lost.hash
    assert board.pin_meta("decision").version.version == meta.version.version
    folders = sorted(p.name for p in (tmp_path / "board" / "decision").iterdir())
    assert folders == [lost.version, meta.version.version]
    other = tmp_path / "board" / "decision" / lost.version
    assert [p.name for p in other.iterdir()] == ["decision.json"]  # the other run's, untouched
