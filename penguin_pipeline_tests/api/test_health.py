"""A damaged newest version on the board: the API keeps serving what it has, says so on /health."""

from __future__ import annotations

import pytest
import requests

from penguin_pipeline.api.registry import ModelHolder
from penguin_pipeline.storage import boards

from .conftest import Server, wait_for, write_version

ROW = {"species": "Gentoo", "sex": "male", "bill_length_mm": 45.1}


def damage(board_path, version: str, how: str) -> None:
    [model_file] = (board_path / boards.MODEL_PIN / version).glob("*.joblib")
    content = model_file.read_bytes()
    model_file.write_bytes(
        content[: len(content) // 3] if how == "truncated" else bytes(len(content))
    )


@pytest.fixture
def board(tmp_path):
    path = tmp_path / "board"
    return path, boards.board_from_url(str(path))


@pytest.mark.parametrize("how", ["truncated", "garbage"])
def test_the_holder_keeps_serving_and_reports_a_damaged_newer_version(board, fitted, how):
    path, pins_board = board
    good = write_version(pins_board, fitted)
    holder = ModelHolder(pins_board)
    holder.refresh()
    assert holder.health() == {"status": "ok", "model_version": good, "problem": None}

    bad = write_version(pins_board, fitted, delta=5, tag="bad")
    damage(path, bad, how)
    for _ in range(2):  # and stays reported on later polls
        holder.refresh()
        health = holder.health()
        assert holder.current.version == good and health["status"] == "degraded"
        assert (
            f"version {bad} on the board is damaged" in health["problem"]
            and f"serving version {good}" in health["problem"]
        )
        assert str(path) not in health["problem"]  # a public route names versions, not storage

    fixed = write_version(pins_board, fitted, delta=7, tag="fixed")
    holder.refresh()
    assert holder.health() == {"status": "ok", "model_version": fixed, "problem": None}


def test_a_board_that_cannot_be_listed_is_reported_until_it_answers_again(
    board, fitted, monkeypatch
):
    path, pins_board = board
    good = write_version(pins_board, fitted)
    holder = ModelHolder(pins_board)
    holder.refresh()

    def unreachable(name):
        raise OSError("board down")

    monkeypatch.setattr(pins_board, "scan_versions", unreachable)
    holder.refresh()
    assert (
        holder.health()["status"] == "degraded"
        and "could not be listed" in holder.health()["problem"]
    )
    monkeypatch.undo()
    holder.refresh()
    assert holder.health() == {"status": "ok", "model_version": good, "problem": None}


@pytest.mark.integration
def test_health_route_on_a_real_server(board_factory, fitted, tmp_path):
    path, pins_board = board_factory("health")
    server = Server(path, tmp_path / "server.log", PENGUIN_MODEL_POLL_SECONDS="0.3")
    try:
        good = requests.post(server.url + "/predict", json=ROW, timeout=5).json()["model_version"]
        assert requests.get(server.url + "/health", timeout=5).json() == {
            "status": "ok",
            "model_version": good,
            "problem": None,
        }
        assert requests.get(server.url + "/ping", timeout=5).json() == {
            "ping": "pong"
        }  # vetiver's, unchanged

        bad = write_version(pins_board, fitted, delta=100, tag="bad")
        damage(path, bad, "garbage")
        health = wait_for(lambda: _degraded(server), what="/health reporting the damaged version")
        assert health["model_version"] == good and bad in health["problem"]
        answer = requests.post(server.url + "/predict", json=ROW, timeout=5)
        assert answer.status_code == 200 and answer.json()["model_version"] == good
        assert f"{bad} is damaged" in server.log()
    finally:
        server.stop()


def _degraded(server) -> dict | None:
    answer = requests.get(server.url + "/health", timeout=5)
    assert answer.status_code == 200  # still serving: a load balancer keeps sending traffic here
    body = answer.json()
    return body if body["status"] == "degraded" else None
