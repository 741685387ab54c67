"""`penguin-pipeline run` that kills itself with SIGKILL at a named point (a test helper).

    python -m penguin_pipeline_tests.crashing_run POINT

The process dies exactly as an out-of-memory kill or a power cut would take it: no exception, no
cleanup, no exit handler. Each point wraps one function of the product and dies before or after
its n-th call, so the kill lands in a known state (a file staged but not committed, a model data
file written but not its data.txt, ...). `run+SECONDS` dies that long after the run starts,
wherever it is then.
"""

from __future__ import annotations

import importlib
import itertools
import os
import signal
import sys
import threading
import types

# name -> (module, attribute in it, which call, die "before" or "after" that call)
POINTS = {
    "schema": ("penguin_pipeline.processing.tables", "ensure_schema", 1, "before"),
    "staging-file-1": ("penguin_pipeline.processing.ingest", "stage_file", 1, "before"),
    "inserted-file-1-uncommitted": (
        "penguin_pipeline.processing.ingest",
        "publish_file",
        1,
        "after",
    ),
    "staging-file-2": ("penguin_pipeline.processing.ingest", "stage_file", 2, "before"),
    "inserted-file-3-uncommitted": (
        "penguin_pipeline.processing.ingest",
        "publish_file",
        3,
        "after",
    ),
    "clean-candidate-built": ("penguin_pipeline.processing.cleaning", "swap_in", 1, "before"),
    "summary-written": ("penguin_pipeline.processing.summary", "build_summary_table", 1, "after"),
    "model-file-without-data-txt": (
        "penguin_pipeline.storage.boards",
        "VersionFolders.write_file",
        2,
        "before",
    ),
    "model-pinned": ("penguin_pipeline.storage.boards", "VersionFolders.write_file", 2, "after"),
    # A folder's whole-file write renames its temp file into place: the model's two files, the
    # champion decision's two, then the report (written in full under its temp name when the run
    # dies).
    "report-half-written": ("penguin_pipeline.storage.locations", "os.replace", 5, "before"),
    "report-written-not-pinned": ("penguin_pipeline.storage.boards", "pin_report", 1, "before"),
    "report-pinned": ("penguin_pipeline.storage.boards", "pin_report", 1, "after"),
}


def die() -> None:
    os.kill(os.getpid(), signal.SIGKILL)


def _dying(function, call: int, when: str):
    # Each call takes its number on entry: the raw step loads two files on two threads, so a
    # shared counter read after the call could already belong to the other thread's call.
    calls = itertools.count(1)

    def wrapper(*args, **kwargs):
        number = next(calls)
        if number == call and when == "before":
            die()
        result = function(*args, **kwargs)
        if number == call:
            die()
        return result

    return wrapper


def _start_timer_with_run(seconds: float) -> None:
    from penguin_pipeline import cli

    run_pipeline = cli.run_pipeline

    def timed(*args, **kwargs):
        threading.Timer(seconds, die).start()
        return run_pipeline(*args, **kwargs)

    cli.run_pipeline = timed


def install(point: str) -> None:
    if point.startswith("run+"):
        _start_timer_with_run(float(point[len("run+") :]))
        return
    module_name, attribute, call, when = POINTS[point]
    owner = importlib.import_module(module_name)
    *path, name = attribute.split(".")
    for part in path:
        inner = getattr(owner, part)
        if isinstance(inner, types.ModuleType):
            # Only this module's view of e.g. `os` changes, not the `os` every other module uses.
            inner = types.SimpleNamespace(**vars(inner))
            setattr(owner, part, inner)
        owner = inner
    setattr(owner, name, _dying(getattr(owner, name), call, when))


if __name__ == "__main__":
    install(sys.argv[1])
    from penguin_pipeline import cli

    sys.argv = ["penguin-pipeline", "run"]
    cli.console()
