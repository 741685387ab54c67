"""The model explorer (`make app`) as a real process on a free port, asking a real API; always
stopped. Shared by the browser tests and bench/bench_explorer.py."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..processes import free_port, start_logged, wait_for
from .conftest import answers, stop_group


@contextmanager
def running_explorer(api_url: str, key: str | None, log: Path) -> Iterator[str]:
    """`python -m penguin_pipeline.explorer` (what `make app` runs) until the block ends."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIN_")}
    env.update(PENGUIN_API_URL=api_url, PYTHONUNBUFFERED="1")
    if key:
        env["PENGUIN_API_KEY"] = key
    url = f"http://127.0.0.1:{port}"
    process = start_logged(
        [sys.executable, "-m", "penguin_pipeline.explorer", "--port", str(port)], env, log
    )
    try:
        wait_for(
            lambda: process.poll() is not None or answers(url),
            timeout=60,
            what=f"the explorer on port {port} (log: {log})",
        )
        if process.poll() is not None:
            raise RuntimeError(f"the explorer exited {process.returncode}:\n{log.read_text()}")
        yield url
    finally:
        stop_group(process, grace=10)
