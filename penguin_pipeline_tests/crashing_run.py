"""`penguin-pipeline run` that kills itself with SIGKILL at a named point (a test helper).

    python -m penguin_pipeline_tests.crashing_run POINT RECORD

The process dies exactly as an out-of-memory kill or a power cut would take it: no exception, no
cleanup, no exit handler. Each point wraps one function of the product and dies before or after
its n-th call, so the kill lands in a known state (a file staged but not committed, a model data
file written but not its data.txt, ...). `run+SECONDS` dies that long after the run was created in
the instance, wherever it is then.

Just before it dies it writes RECORD (JSON): what fired, and the product's functions on the stack
of the thread it fired in (for a timer, the main thread's). A call count is only a proxy for a
state: the test checks the record, the dead run's event log and the files left against the
point's `step`, `on_stack`, `present` and `absent`, so a change of the product that moves an n-th
call elsewhere fails there instead of silently testing another state.
"""

from __future__ import annotations

import importlib
import itertools
import json
import os
import signal
import sys
import threading
import time
import types
from pathlib import Path
from typing import NamedTuple

PRODUCT = Path(importlib.util.find_spec("penguin_pipeline").origin).parent


class Point(NamedTuple):
    module: str
    attribute: str  # the function wrapped, in `module`
    call: int  # which call of it
    when: str  # die "before" or "after" that call
    step: str  # the Dagster step the kill must land in
    on_stack: tuple[str, ...]  # product functions the call must be made under
    present: tuple[str, ...] = ()  # globs under the data folder that must match after the kill
    absent: tuple[str, ...] = ()  # ... and globs that must not


INGEST, BOARDS = "penguin_pipeline.processing.ingest", "penguin_pipeline.storage.boards"
LOCATIONS = "penguin_pipeline.storage.locations"
WRITE_FILE = "VersionFolders.write_file"  # a pin version's files one by one, data.txt last
SUMMARY_PIN, MODEL_PIN = "board/penguin_summary/*", "board/penguin_model/*"
DECISION_PIN, REPORT_PIN = "board/penguin_model_champion/*", "board/penguin_report/*"
REPORT = "reports/penguin_report.html"
# os.replace renames a whole file written under a temp name into place: the summary pin's two
# files, the model's two, the champion decision's two, then the report.
POINTS = {
    "schema": Point(
        "penguin_pipeline.processing.tables",
        "ensure_schema",
        1,
        "before",
        "raw_penguins",
        ("ingest_in_batches",),
    ),
    "staging-file-1": Point(INGEST, "stage_file", 1, "before", "raw_penguins", ("ingest_file",)),
    "inserted-file-1-uncommitted": Point(
        INGEST, "publish_file", 1, "after", "raw_penguins", ("ingest_file",)
    ),
    "staging-file-2": Point(INGEST, "stage_file", 2, "before", "raw_penguins", ("ingest_file",)),
    "inserted-file-3-uncommitted": Point(
        INGEST, "publish_file", 3, "after", "raw_penguins", ("ingest_file",)
    ),
    "clean-candidate-built": Point(
        "penguin_pipeline.processing.cleaning",
        "swap_in",
        1,
        "before",
        "penguins",
        ("rebuild_clean_table",),
    ),
    "summary-written": Point(
        "penguin_pipeline.processing.summary",
        "build_summary_table",
        1,
        "after",
        "penguin_summary",
        ("penguin_summary",),
        absent=(SUMMARY_PIN,),
    ),
    "summary-pin-without-data-txt": Point(
        BOARDS,
        WRITE_FILE,
        2,
        "before",
        "penguin_summary",
        ("pin_summary",),
        present=(SUMMARY_PIN + "/penguin_summary.json",),
        absent=(SUMMARY_PIN + "/data.txt",),
    ),
    "model-file-without-data-txt": Point(
        BOARDS,
        WRITE_FILE,
        4,
        "before",
        "penguin_model",
        ("write_vetiver_pin",),
        present=(MODEL_PIN + "/penguin_model.joblib",),
        absent=(MODEL_PIN + "/data.txt",),
    ),
    "model-pinned": Point(
        BOARDS,
        WRITE_FILE,
        4,
        "after",
        "penguin_model",
        ("write_vetiver_pin",),
        present=(MODEL_PIN + "/data.txt",),
        absent=(DECISION_PIN,),
    ),
    "decision-half-written": Point(
        LOCATIONS,
        "os.replace",
        5,
        "before",
        "penguin_champion",
        ("write_decision",),
        present=(DECISION_PIN + "/.penguin_model_champion.json.*.partial",),
        absent=(DECISION_PIN + "/penguin_model_champion.json",),
    ),
    "report-half-written": Point(
        LOCATIONS,
        "os.replace",
        7,
        "before",
        "penguin_report",
        ("publish_if_changed", "Location.write"),
        present=("reports/.penguin_report.html.*.partial",),
        absent=(REPORT,),
    ),
    "report-written-not-pinned": Point(
        BOARDS,
        "pin_report",
        1,
        "before",
        "penguin_report",
        ("publish_if_changed",),
        present=(REPORT,),
        absent=(REPORT_PIN,),
    ),
    "report-pinned": Point(
        BOARDS,
        "pin_report",
        1,
        "after",
        "penguin_report",
        ("publish_if_changed",),
        present=(REPORT, REPORT_PIN + "/data.txt"),
    ),
}


def product_stack(frame) -> list[str]:
    """The product's functions on a thread's stack, outermost first."""
    names = []
    while frame is not None:
        if Path(frame.f_code.co_filename).is_relative_to(PRODUCT):
            names.append(frame.f_code.co_qualname)
        frame = frame.f_back
    return names[::-1]


def die(record_path: Path, record: dict) -> None:
    """Write what fired (a kill leaves bytes already written to the system), then SIGKILL."""
    record_path.write_text(json.dumps(record))
    os.kill(os.getpid(), signal.SIGKILL)


def _dying(function, point: str, record_path: Path):
    call, when = POINTS[point].call, POINTS[point].when
    # Each call takes its number on entry: the raw step loads two files on two threads, so a
    # shared counter read after the call could already belong to the other thread's call.
    calls = itertools.count(1)

    def fire(moment: str) -> None:
        die(
            record_path,
            {
                "fired": f"{moment} call {call} of {POINTS[point].attribute}",
                "thread": threading.current_thread().name,
                "stack": product_stack(sys._getframe(2)),  # the caller of the wrapped function
            },
        )

    def wrapper(*args, **kwargs):
        number = next(calls)
        if number == call and when == "before":
            fire("before")
        result = function(*args, **kwargs)
        if number == call:
            fire("after")
        return result

    return wrapper


def _start_timer_with_run(seconds: float, record_path: Path) -> None:
    """Die `seconds` after the run is created: a kill before it would leave nothing to recover.

    Wraps the instance method `execute_in_process` creates its run with; should Dagster rename
    it, no timer starts, the run finishes, and the test fails on its exit code."""
    import dagster as dg

    create_run_for_job = dg.DagsterInstance.create_run_for_job

    def fire(run_id: str, created: float) -> None:
        main = sys._current_frames()[threading.main_thread().ident]
        die(
            record_path,
            {
                "fired": f"timer, {time.monotonic() - created:.2f} s after the run was created",
                "run_id": run_id,
                "thread": "MainThread",
                "stack": product_stack(main),
            },
        )

    def creating(*args, **kwargs):
        run = create_run_for_job(*args, **kwargs)
        threading.Timer(seconds, fire, [run.run_id, time.monotonic()]).start()
        return run

    dg.DagsterInstance.create_run_for_job = creating


def install(point: str, record_path: Path) -> None:
    if point.startswith("run+"):
        _start_timer_with_run(float(point[len("run+") :]), record_path)
        return
    owner = importlib.import_module(POINTS[point].module)
    *path, name = POINTS[point].attribute.split(".")
    for part in path:
        inner = getattr(owner, part)
        if isinstance(inner, types.ModuleType):
            # Only this module's view of e.g. `os` changes, not the `os` every other module uses.
            inner = types.SimpleNamespace(**vars(inner))
            setattr(owner, part, inner)
        owner = inner
    setattr(owner, name, _dying(getattr(owner, name), point, record_path))


if __name__ == "__main__":
    install(sys.argv[1], Path(sys.argv[2]))
    from penguin_pipeline import cli

    sys.argv = ["penguin-pipeline", "run"]
    cli.console()
