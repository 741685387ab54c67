"""The version holder: follow the newest, pin, and keep serving when a version cannot load."""

from __future__ import annotations

import pytest

from penguin_pipeline.api.registry import ModelHolder
from penguin_pipeline.storage import boards

from .conftest import corrupt, write_version


@pytest.fixture
def board(fitted, tmp_path):
    path = tmp_path / "board"
    b = boards.board_from_url(str(path))
    b.path_for_tests = path
    return b


def test_no_pin_yet_means_nothing_served_and_a_reason(board):
    holder = ModelHolder(board)
    status = holder.refresh()
    assert (
        status["outcome"] == "failed"
        and holder.current is None
        and "no penguin_model" in status["last_error"]["reason"]
    )


def test_follows_the_newest_version(board, fitted):
    first = write_version(board, fitted)
    holder = ModelHolder(board)
    assert holder.refresh()["outcome"] == "swapped" and holder.current.version == first
    assert holder.refresh()["outcome"] == "unchanged"
    second = write_version(board, fitted, delta=100, tag="second")
    assert holder.refresh()["outcome"] == "swapped"
    served = holder.current
    assert (served.version, served.data_snapshot) == (second, "second")
    assert served.predictor.spec.categories["species"] == tuple(fitted.categories["species"])


def test_a_corrupt_version_leaves_the_old_one_serving_and_logs_why(board, fitted, api_log):
    good = write_version(board, fitted)
    holder = ModelHolder(board)
    holder.refresh()
    bad = write_version(board, fitted, delta=5, tag="bad")
    corrupt(board.path_for_tests, bad)
    status = holder.refresh()
    assert status["outcome"] == "failed" and holder.current.version == good
    assert status["last_error"]["version"] == bad and bad in api_log.text
    assert f"still serving {good}" in api_log.text
    assert holder.refresh()["outcome"].startswith("skipped")  # no retry storm on every poll
    newer = write_version(board, fitted, delta=7, tag="fixed")
    assert holder.refresh()["outcome"] == "swapped" and holder.current.version == newer


def test_a_model_needing_a_missing_package_is_refused(board, fitted, tmp_path, monkeypatch):
    module = tmp_path / "penguin_vanishing_pkg.py"
    module.write_text(
        "from sklearn.linear_model import LinearRegression\n"
        "class Special(LinearRegression):\n    pass\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import copy

    import penguin_vanishing_pkg

    odd = copy.deepcopy(fitted)
    regress = odd.pipeline.named_steps["regress"]
    special = penguin_vanishing_pkg.Special()
    special.__dict__.update(regress.__dict__)
    odd.pipeline.steps[1] = ("regress", special)
    version = write_version(board, odd, delta=0, tag="needs-missing-pkg")
    monkeypatch.delitem(__import__("sys").modules, "penguin_vanishing_pkg")
    module.unlink()
    status = ModelHolder(board, pinned=version).refresh()
    assert (
        status["outcome"] == "failed" and "penguin_vanishing_pkg" in status["last_error"]["reason"]
    )


def test_pin_and_unpin(board, fitted):
    old = write_version(board, fitted)
    new = write_version(board, fitted, delta=1, tag="new")
    holder = ModelHolder(board, pinned=old)
    holder.refresh()
    assert holder.current.version == old
    write_version(board, fitted, delta=2, tag="newer")
    assert holder.refresh()["outcome"] == "unchanged" and holder.current.version == old
    assert holder.pin(new)["pinned_version"] == new and holder.current.version == new
    missing = holder.pin("20990101T000000Z-nosuch")
    assert missing["outcome"] == "no such version" and missing["last_error"] is None
    assert holder.current.version == new and holder.pinned == new
    assert (
        holder.unpin()["outcome"] == "swapped"
        and holder.current.version == boards.newest_version(board, boards.MODEL_PIN).version
    )


def test_a_storage_outage_is_retried_not_held_against_the_version(board, fitted, monkeypatch):
    from penguin_pipeline.storage.s3 import S3StorageError

    first = write_version(board, fitted)
    holder = ModelHolder(board)
    holder.refresh()
    second = write_version(board, fitted, delta=100, tag="second")
    real_read = boards.read_model

    def s3_down(*args, **kwargs):
        raise S3StorageError(
            "reading penguin_model from bucket b at http://127.0.0.1:1: unreachable"
        )

    monkeypatch.setattr(boards, "read_model", s3_down)
    status = holder.refresh()
    assert status["outcome"] == "failed" and "unreachable" in status["last_error"]["reason"]
    assert holder.current.version == first and second not in holder.failed
    monkeypatch.setattr(boards, "read_model", real_read)
    assert holder.refresh()["outcome"] == "swapped" and holder.current.version == second
