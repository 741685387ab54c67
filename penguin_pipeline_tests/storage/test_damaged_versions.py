"""A model version whose file was cut short or overwritten after writing (its data.txt intact).

Every reader that decides something from the board (the pipeline's "trained on the same data?", the
report, the API) must pass over it: the listing catches a wrong size, a content-hash check (pins'
own pin_hash in data.txt) catches garbage of the right size.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from penguin_pipeline import cli
from penguin_pipeline.processing import modeling
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from ..test_summary_and_model import clean  # noqa: F401  (fixture)

ROW = pd.DataFrame([{"species": "Adelie", "sex": "female", "bill_length_mm": 38.0}])
PIN = boards.MODEL_PIN


def damaged(content: bytes, how: str) -> bytes:
    if how == "truncated":
        return content[: len(content) // 2]
    if how == "garbage":  # same size: bit rot, a bad copy; the listing cannot see it
        return bytes(len(content))
    flipped = bytearray(content)  # one byte changed: it may even still unpickle
    flipped[len(flipped) // 2] ^= 0x01
    return bytes(flipped)


def damage(backend, version: str, how: str) -> None:
    name = f"{PIN}/{version}/{PIN}.joblib"
    backend.put_raw(
        backend.board_url, name, damaged(backend.list_raw(backend.board_url)[name], how)
    )


@pytest.fixture
def fitted(clean):  # noqa: F811
    from penguin_pipeline.processing import tables

    return modeling.fit_model(modeling.load_training_frame(clean, tables.CLEAN))


@pytest.mark.parametrize("how", ["truncated", "garbage", "one byte flipped"])
def test_a_damaged_newest_version_is_passed_over_by_every_reader(backend, fitted, how):
    board = boards.board_from_url(backend.board_url, backend.endpoint_url)
    good = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, PIN))
    newer = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, PIN))
    damage(backend, newer, how)

    facts = boards.latest_model_facts(board)
    assert facts["version"] == good
    [skipped] = facts["damaged_versions"]
    assert skipped["version"] == newer and f"{PIN}.joblib" in skipped["problem"]
    assert boards.read_model(board).metadata.version == good
    with pytest.raises(boards.DamagedVersion, match=f"{newer} is damaged"):
        boards.read_model(board, version=newer)
    assert board.verify_version(PIN, good) is None


def test_an_intact_version_verifies(backend, fitted):
    board = boards.board_from_url(backend.board_url, backend.endpoint_url)
    version = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, PIN))
    assert board.verify_version(PIN, version) is None
    assert boards.latest_model_facts(board)["damaged_versions"] == []
    assert (
        boards.read_model(board, version=version).model.predict(ROW)[0]
        == fitted.pipeline.predict(ROW)[0]
    )


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_the_next_run_pins_a_sound_version_over_a_damaged_one_trained_on_the_same_data(
    seeded_landing, instance, how
):
    """Same data as the damaged version: without the check, the run would call it "trained"."""
    settings = load_settings()
    assert cli.run_pipeline(instance).success
    board = boards.board_from_url(settings.board_url)
    first = boards.latest_model_facts(board)["version"]
    model_file = Path(settings.board_url) / PIN / first / f"{PIN}.joblib"
    model_file.write_bytes(damaged(model_file.read_bytes(), how))

    result = cli.run_pipeline(instance)
    assert result.success, cli.failure_messages(result)
    facts = boards.latest_model_facts(board)
    assert facts["version"] > first and board.verify_version(PIN, facts["version"]) is None
    assert facts["version"] in Path(settings.report_url).read_text(encoding="utf-8")
    pinned = (
        result.asset_materializations_for_node("penguin_model")[0].metadata["newly_pinned"].value
    )
    assert pinned is True
