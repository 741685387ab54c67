"""One contract, two backends: every test here runs on folders and on S3 (moto over HTTP)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pandas as pd
import pytest
from vetiver import VetiverModel

from penguin_pipeline.processing import modeling
from penguin_pipeline.storage import boards, landing, locations

from ..conftest import LTER_FILE, pinned_report
from ..test_summary_and_model import clean  # noqa: F401  (fixture)

ROW = pd.DataFrame([{"species": "Adelie", "sex": "female", "bill_length_mm": 38.0}])


@pytest.fixture
def fitted(clean):  # noqa: F811
    from penguin_pipeline.processing import tables

    return modeling.fit_model(modeling.load_training_frame(clean, tables.CLEAN))


def board_of(backend):
    return boards.board_from_url(backend.board_url, backend.endpoint_url)


def landing_of(backend):
    return landing.landing_from_url(
        backend.landing_url, backend.quarantine_url, backend.endpoint_url
    )


# -- the model board ------------------------------------------------------------------------


def test_versions_written_in_the_same_second_keep_the_newest_latest(backend, fitted):
    board = board_of(backend)
    written = [
        boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
        for _ in range(3)
    ]
    assert written == sorted(written) and len(set(written)) == 3
    assert boards.latest_model_facts(board)["version"] == written[-1]
    assert (
        board.pin_meta(boards.MODEL_PIN).version.version == written[-1]
    )  # pins' own reader agrees
    assert boards.read_model(board).metadata.version == written[-1]


def test_versions_are_stamped_in_utc(backend, fitted):
    board = board_of(backend)
    before = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    version = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    created = board.pin_meta(boards.MODEL_PIN).version.created
    after = datetime.now(UTC).replace(tzinfo=None)
    assert before <= created <= after
    assert version.startswith(created.strftime("%Y%m%dT%H%M%SZ"))


def test_model_reads_back_with_our_metadata_through_vetiver(backend, fitted):
    board = board_of(backend)
    version = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    model = boards.read_model(board)
    assert model.metadata.version == version
    assert model.metadata.user["data_snapshot"] == fitted.data_snapshot
    assert model.model.predict(ROW)[0] == fitted.pipeline.predict(ROW)[0]
    assert (
        VetiverModel.from_pin(board, boards.MODEL_PIN).metadata.version == version
    )  # vetiver's own path
    assert boards.latest_model_facts(board)["r2"] == round(fitted.r2, 6)


def test_half_written_versions_are_never_taken_as_latest(backend, fitted):
    board = board_of(backend)
    good = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    files = backend.list_raw(backend.board_url)
    data_txt = files[f"{boards.MODEL_PIN}/{good}/data.txt"]
    model_bytes = files[f"{boards.MODEL_PIN}/{good}/{boards.MODEL_PIN}.joblib"]
    pin = boards.MODEL_PIN
    # Newer version folders, each cut short in a different way (names sort after `good`):
    backend.put_raw(
        backend.board_url, f"{pin}/29990101T000001Z-aaaaa/{pin}.joblib", model_bytes
    )  # no data.txt
    backend.put_raw(
        backend.board_url, f"{pin}/29990101T000002Z-bbbbb/data.txt", data_txt
    )  # no data
    backend.put_raw(
        backend.board_url, f"{pin}/29990101T000003Z-ccccc/data.txt", data_txt
    )  # truncated data
    backend.put_raw(
        backend.board_url,
        f"{pin}/29990101T000003Z-ccccc/{pin}.joblib",
        model_bytes[: len(model_bytes) // 2],
    )
    backend.put_raw(
        backend.board_url, f"{pin}/29990101T000004Z-ddddd/data.txt", data_txt[:25]
    )  # truncated meta

    assert [v.version for v in board.pin_versions(pin, as_df=False)] == [good]
    assert boards.latest_model_facts(board)["version"] == good
    assert boards.read_model(board).model.predict(ROW)[0] == fitted.pipeline.predict(ROW)[0]
    assert VetiverModel.from_pin(board, pin).metadata.version == good
    # and the next good write becomes latest, though the broken folders' names sort after it
    newer = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, pin))
    assert good < newer < "29990101T000001Z-aaaaa"
    assert boards.latest_model_facts(board)["version"] == newer
    assert VetiverModel.from_pin(board, pin).metadata.version == newer


def test_the_data_file_is_written_before_data_txt(backend, fitted):
    board = board_of(backend)
    order = []
    fs = board.location.fs  # the filesystem under the board, the one that writes each file
    put_file = fs.put_file

    def recording_put_file(source, target, *args, **kwargs):
        order.append(str(target).rsplit("/", 1)[-1])
        return put_file(source, target, *args, **kwargs)

    fs.put_file = recording_put_file
    boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    names = [re.sub(r"^\.(.+)\.\w+\.partial$", r"\1", n) for n in order]  # a folder's partials
    assert names == [f"{boards.MODEL_PIN}.joblib", "data.txt"]


def test_report_pins_beside_the_model_and_is_written_whole_to_the_reports_location(
    backend, tmp_path
):
    board = board_of(backend)
    report = tmp_path / "penguin_report.html"
    report.write_text("<html>first</html>", encoding="utf-8")
    first = boards.pin_report(board, report)
    report.write_text("<html>second</html>", encoding="utf-8")
    second = boards.pin_report(board, report)
    assert second > first
    assert pinned_report(board) == b"<html>second</html>"
    reports = locations.open_location(backend.reports_url, backend.endpoint_url)
    assert reports.read_start("penguin_report.html", 100) is None
    where = reports.write("penguin_report.html", report)
    assert where == f"{backend.reports_url}/penguin_report.html"
    assert reports.read_start("penguin_report.html", 7) == b"<html>s"
    reports.write("penguin_report.html", b"<html>third</html>")
    assert backend.list_raw(backend.reports_url) == {"penguin_report.html": b"<html>third</html>"}


# -- the landing zone -------------------------------------------------------------------------


def test_files_reports_new_and_changed_files_the_same_way(backend):
    zone = landing_of(backend)
    assert zone.files() == []
    backend.put_raw(backend.landing_url, "a.csv", b"one\n")
    backend.put_raw(backend.landing_url, "gentoo/b.csv", b"two\n")
    backend.put_raw(backend.landing_url, "notes.txt", b"not a landing file")
    backend.put_raw(backend.landing_url, "unregistered/e.csv", b"no source owns this folder")
    backend.put_raw(backend.landing_url, ".c.csv.partial", b"being uploaded")
    first = {f.name: f for f in zone.files()}
    assert sorted(first) == ["a.csv", "gentoo/b.csv"]
    assert first["a.csv"].size == 4 and first["a.csv"].modified > 0
    assert first["a.csv"].content_hash != first["gentoo/b.csv"].content_hash

    backend.put_raw(backend.landing_url, "a.csv", b"one, changed\n")
    backend.put_raw(backend.landing_url, "d.csv", b"four\n")
    second = {f.name: f for f in zone.files()}
    assert sorted(second) == ["a.csv", "d.csv", "gentoo/b.csv"]
    assert second["a.csv"].content_hash != first["a.csv"].content_hash
    assert second["a.csv"].size == len(b"one, changed\n")
    assert second["gentoo/b.csv"] == first["gentoo/b.csv"]  # untouched: same hash, size and time


def test_local_copy_gives_the_landed_bytes(backend):
    zone = landing_of(backend)
    zone.land("adelie/penguins-raw.csv", LTER_FILE.read_bytes())
    [landed] = zone.files()
    assert landed.name == "adelie/penguins-raw.csv"
    with zone.local_copy(landed.name) as path:
        assert path.read_bytes() == LTER_FILE.read_bytes()
        assert path.suffix == ".csv"


def test_quarantine_moves_the_file_out_with_its_reason(backend):
    zone = landing_of(backend)
    zone.land("bad/notes.csv", b"this is,not\nthe lter,layout\n")
    zone.files()
    moved = zone.quarantine("bad/notes.csv", "missing column(s): Species")
    assert zone.files() == []
    assert moved.startswith(backend.quarantine_url)
    kept = backend.list_raw(backend.quarantine_url)
    [data_name] = [n for n in kept if not n.endswith(".reason.txt")]
    assert (
        data_name.endswith("bad__notes.csv")
        and kept[data_name] == b"this is,not\nthe lter,layout\n"
    )
    assert kept[data_name + ".reason.txt"] == b"missing column(s): Species\n"


def test_seeding_an_empty_landing_zone(backend):
    zone = landing_of(backend)
    assert landing.seed_if_empty(zone) is True
    assert [f.name for f in zone.files()] == [landing.SEED_FILE_NAME]
    assert landing.seed_if_empty(zone) is False
