"""A tiny real board (the shipped LTER file, cleaned, fitted); a real uvicorn server, free port."""

from __future__ import annotations

import copy
import logging
import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
import requests

from penguin_pipeline.processing import modeling, summary, tables
from penguin_pipeline.processing.features import LinearPredictor
from penguin_pipeline.storage import boards

from ..processes import free_port, wait_for  # noqa: F401  (re-exported for the API tests)
from ..test_cleaning import clean_shipped

PROJECT = Path(__file__).resolve().parents[2]
KEYS = {"predict": "test-predict-key-1", "admin": "test-admin-key-2", "both": "test-both-key-3"}
KEYS_ENV = f"predict:{KEYS['predict']};admin:{KEYS['admin']};predict,admin:{KEYS['both']}"


@pytest.fixture(scope="session")
def fitted():
    with clean_shipped(duckdb.connect()) as con:
        return modeling.fit_model(modeling.load_training_frame(con, tables.CLEAN))


def shifted(fitted, delta: float, tag: str):
    """The fitted model, intercept moved by `delta`: versions we can tell apart by prediction."""
    other = copy.deepcopy(fitted)
    other.pipeline.named_steps["regress"].intercept_ += delta
    other.predictor = LinearPredictor.from_pipeline(other.pipeline, other.spec)  # what is pinned
    other.data_snapshot = tag
    return other


def write_version(board, fitted, delta: float = 0.0, tag: str | None = None) -> str:
    model = (
        fitted if delta == 0 and tag is None else shifted(fitted, delta, tag or f"shift{delta:g}")
    )
    return boards.write_vetiver_pin(board, modeling.to_vetiver(model, boards.MODEL_PIN))


def corrupt(board_path: Path, version: str) -> None:
    """Overwrite a version's pickle with garbage of the same size (bit rot, a bad copy): the
    board still lists it."""
    files = list((board_path / boards.MODEL_PIN / version).glob("*.joblib"))
    assert files
    for f in files:
        f.write_bytes(b"\x00" * f.stat().st_size)


@pytest.fixture(scope="session")
def board_factory(fitted, tmp_path_factory):
    def make(name: str):
        path = tmp_path_factory.mktemp(name) / "board"
        board = boards.board_from_url(str(path))
        write_version(board, fitted)
        return path, board

    return make


class Server:
    def __init__(self, board_path: Path, log_path: Path, port: int | None = None, **env):
        self.port = port or free_port()  # a port given: a restart where clients expect it
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIN_")}
        full_env.update(
            {"PENGUIN_BOARD": str(board_path), "PENGUIN_DATA_DIR": str(board_path.parent), **env}
        )
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "penguin_pipeline.api",
                "--port",
                str(self.port),
                "--no-access-log",
            ],
            cwd=PROJECT,
            env=full_env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"server exited {self.process.returncode}:\n{self.log()}")
            try:
                if requests.get(self.url + "/ping", timeout=1).ok:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"server did not answer /ping within 60 s:\n{self.log()}")

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=15)
        self._log.close()


@pytest.fixture(scope="module")
def keyed_server(board_factory, tmp_path_factory):
    """A server with keys, polling every 0.3 s, on its own board."""
    path, board = board_factory("keyed")
    server = Server(
        path,
        tmp_path_factory.mktemp("logs") / "server.log",
        PENGUIN_API_KEYS=KEYS_ENV,
        PENGUIN_MODEL_POLL_SECONDS="0.3",
        PENGUIN_API_MAX_BATCH="2000",
    )
    server.board = board
    server.board_path = path
    yield server
    server.stop()


class LogLines(logging.Handler):
    """The API's log records as text (works without pytest's logging plugin, unlike caplog)."""

    def __init__(self):
        super().__init__(logging.INFO)
        self.text = ""

    def emit(self, record):
        self.text += record.getMessage() + "\n"


@pytest.fixture
def api_log():
    lines, logger = LogLines(), logging.getLogger("penguin_pipeline.api")
    old_level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(lines)
    yield lines
    logger.removeHandler(lines)
    logger.setLevel(old_level)


def auth(which: str) -> dict:
    return {"Authorization": f"Bearer {KEYS[which]}"}


@pytest.fixture(scope="session")
def summary_records():
    """penguin_summary of the shipped file at species x sex grain, as the pipeline pins it."""
    with clean_shipped(duckdb.connect()) as con:
        summary.build_summary_table(con, tables.CLEAN, tables.SUMMARY)
        return summary.by_species_and_sex(con.execute(f"SELECT * FROM {tables.SUMMARY}").df())


@pytest.fixture(scope="session")
def fitted_without_chinstrap():
    """A model trained on Adelie and Gentoo only: a version whose inputs differ."""
    with clean_shipped(duckdb.connect()) as con:
        frame = modeling.load_training_frame(con, tables.CLEAN)
    fitted = modeling.fit_model(frame[frame["species"] != "Chinstrap"].reset_index(drop=True))
    fitted.data_snapshot = "no-chinstrap"
    return fitted
