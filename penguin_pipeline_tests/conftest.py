"""Shared fixtures: every test gets its own data folder (DuckDB file, board, landing, reports)."""

from __future__ import annotations

import shutil
import signal
import warnings
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from penguin_pipeline.processing import ingest, tables
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import landing, warehouse

LTER_FILE = landing.packaged_lter_file()
CLEAN_FILE = LTER_FILE.with_name("penguins.csv")
# Every asset penguin_job materializes (the sources are external), in graph order.
PIPELINE_ASSETS = [
    "raw_penguins",
    "penguins",
    "penguin_summary",
    "model_monitoring",
    "penguin_model",
    "penguin_champion",
    "penguin_report",
]


LAKE_TESTS = Path(__file__).parent / "lake"


@pytest.hookimpl(tryfirst=True)  # before `-m` selects by marker
def pytest_collection_modifyitems(items):
    """The DuckLake's tests (the lake folder, and tests marked lake elsewhere) are marked lake:
    they need DuckDB 1.5.5 and the lake's extension packages, in .venv-lake (`make test` runs them
    there); in an environment without them they are skipped, saying where they run.

    Then tests that start real processes first, the longest kinds first: `make test` hands whole
    files to its CPUs as they come free (pytest-xdist, --dist loadfile, in this order with
    --no-loadscope-reorder), and a long file handed out last would run alone at the end."""
    lake_missing = lake_extensions_missing()
    for item in items:
        if LAKE_TESTS in item.path.parents:
            item.add_marker(pytest.mark.lake)
        if lake_missing and item.get_closest_marker("lake"):
            item.add_marker(pytest.mark.skip(reason=lake_missing))

    def rank(item) -> int:
        kinds = ("prod", "browser", "integration")
        return next(
            (i for i, kind in enumerate(kinds) if item.get_closest_marker(kind)), len(kinds)
        )

    items.sort(key=rank)


def lake_extensions_missing() -> str | None:
    """Why this environment cannot run the lake's tests, or None when it can."""
    try:
        warehouse.extension_file("ducklake")
    except warehouse.WarehouseUnavailable as exc:
        return f"{exc} (make test runs the lake's tests in .venv-lake)"
    return None


@pytest.fixture(autouse=True, scope="session")
def default_stop_signals():
    """SIGINT and SIGTERM as a terminal's foreground process has them, once per test process.

    A shell without job control starts a background command (`make test &`, and CI runners that
    do the same) with SIGINT ignored, and every process keeps an ignored signal across exec.
    Dagster's interrupt set-up, run in the test process, then copies that to SIGTERM. So `make dev`
    started by a test ignored Ctrl-C and `prod.stop` had to SIGKILL: CI failed, and both tests
    passed when run from a terminal. Tests that start processes must start them as a user would.
    """
    for sig, default in {
        signal.SIGINT: signal.default_int_handler,
        signal.SIGTERM: signal.SIG_DFL,
    }.items():
        if signal.getsignal(sig) == signal.SIG_IGN:
            warnings.warn(f"{sig.name} was ignored in the test process; restored", stacklevel=1)
            signal.signal(sig, default)


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    """Point every setting at a fresh folder under tmp_path (the code reads them at call time)."""
    root = tmp_path / "data"
    monkeypatch.setenv("PENGUIN_DATA_DIR", str(root))
    for name in (
        "PENGUIN_DUCKDB",
        "PENGUIN_BOARD",
        "PENGUIN_LANDING",
        "PENGUIN_REPORTS",
        "PENGUIN_QUARANTINE",
    ):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture
def settings(data_dir):
    return load_settings()


@pytest.fixture
def landing_dir(settings) -> Path:
    path = Path(settings.landing_url)
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def seeded_landing(landing_dir) -> Path:
    shutil.copyfile(LTER_FILE, landing_dir / "penguins-raw.csv")
    return landing_dir


@pytest.fixture
def instance():
    """A throwaway instance, current while the test runs: defs() reads Dagster's definitions state
    from the current instance, so a test that loads the definitions needs one."""
    with dg.instance_for_test() as inst:
        yield inst


@pytest.fixture(autouse=True)
def no_instance_left_current():
    """Fail the test that leaves a Dagster instance current (an evaluation context not closed),
    instead of a later test failing at random when the garbage collector closes it."""
    from dagster._core.storage.defs_state.base import DefsStateStorage

    yield
    assert DefsStateStorage.get() is None, (
        "a Dagster instance was left open: use contexts in `with`"
    )


@pytest.fixture
def con():
    connection = duckdb.connect()
    tables.ensure_schema(connection)
    yield connection
    connection.close()


def lter_lines() -> list[str]:
    """The shipped LTER file's lines (header first), for building test files."""
    return LTER_FILE.read_text(encoding="utf-8").splitlines()


def write_lines(path: Path, lines: list[str], newline: str = "\n", bom: bool = False) -> Path:
    text = newline.join(lines) + newline
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode("utf-8"))
    return path


def query(settings, sql: str):
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as connection:
        return connection.execute(sql).fetchall()


def pinned_report(board) -> bytes:
    """The newest penguin_report pin's file (pins reads a file pin only through a cache; ours has
    none)."""
    from penguin_pipeline.storage import boards

    meta = board.pin_meta(boards.REPORT_PIN)
    return board.fs.cat(board.construct_path([boards.REPORT_PIN, meta.version.version, meta.file]))


def fail_staging(monkeypatch, failing_file: str):
    """Make staging `failing_file` raise "disk full while staging" (something a pre-flight cannot
    see); returns the real stage_file, to put back with monkeypatch.setattr."""
    real_stage = ingest.stage_file

    def stage(con, path, source_file, file_hash):
        if source_file == failing_file:
            raise OSError("disk full while staging")
        return real_stage(con, path, source_file, file_hash)

    monkeypatch.setattr(ingest, "stage_file", stage)
    return real_stage
