"""One storage code path: which backend a URL gets, and where a landing zone quarantines."""

from __future__ import annotations

from pathlib import PurePosixPath

import pytest

from penguin_pipeline.storage import landing, locations


def test_the_url_alone_picks_the_backend_and_a_pathlib_mangled_s3_url_still_works():
    mangled = str(
        PurePosixPath("s3://penguins/board")
    )  # what pathlib makes of it: s3:/penguins/board
    where = locations.open_location(mangled, "http://127.0.0.1:9")  # no request is made here
    assert where.url == "s3://penguins/board" and where.root == "penguins/board"
    assert "bucket 'penguins' at endpoint http://127.0.0.1:9" in where.describe()
    assert locations.open_location("s3://penguins").sibling("quarantine").url == (
        "s3://penguins/quarantine"
    )
    with pytest.raises(ValueError, match="gcs://penguins/board"):
        locations.open_location("gcs://penguins/board")


def test_a_folder_landing_quarantines_beside_itself_when_the_quarantine_names_another_store(
    tmp_path,
):
    zone = landing.landing_from_url(str(tmp_path / "raw"), "s3://penguins/quarantine")
    zone.land("bad.csv", b"not,the\nlter,layout\n")
    assert [f.name for f in zone.files()] == ["bad.csv"]
    moved = zone.quarantine("bad.csv", "missing column(s): Species")
    assert moved.startswith(str(tmp_path / "quarantine") + "/") and moved.endswith("-bad.csv")
    assert (tmp_path / "quarantine" / (moved.rsplit("/", 1)[1] + ".reason.txt")).read_text() == (
        "missing column(s): Species\n"
    )
    assert zone.files() == [] and not any((tmp_path / "raw").iterdir())


def test_two_writers_of_one_folder_file_at_once_each_rename_their_own_partial(
    tmp_path, monkeypatch
):
    """Two runs publishing the same report at once (the lake's runs are not serialised): the
    second's whole write lands while the first's copy is still being written. Each renames its
    own partial file, so both succeed and the file is whole (one shared partial name made the
    first's rename fail: the second had already moved it)."""
    where = locations.open_location(str(tmp_path))
    write, nested = locations.put, []

    def put_with_another_writer_meanwhile(fs, path, content):
        write(fs, path, content)
        if not nested:
            nested.append(path)
            where.write("report.html", b"<html>second</html>")

    monkeypatch.setattr(locations, "put", put_with_another_writer_meanwhile)
    where.write("report.html", b"<html>first</html>")
    assert (tmp_path / "report.html").read_bytes() == b"<html>first</html>"
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]  # no partial left behind
