"""What a user watching sees, from a process of its own: each new landing file and each new
penguin_model version on the board, one JSON line each with the wall-clock time it was first seen.

python bench/freshness_watch.py  (the landing zone and board from the environment, as the CLI's)
Polls both every 0.2 s until killed; bench_freshness.py reads its lines.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from penguin_pipeline.cli import landing_zone  # noqa: E402
from penguin_pipeline.settings import load_settings  # noqa: E402
from penguin_pipeline.storage import boards  # noqa: E402

POLL_SECONDS = 0.2


def versions(board) -> set[str]:
    """The complete versions listed (the board's own listing: a version mid-write is not one)."""
    try:
        complete, _ = board.scan_versions(boards.MODEL_PIN)
    except Exception:  # no pin yet
        return set()
    return {v.version for v in complete}


def main() -> None:
    settings = load_settings()
    zone, board = landing_zone(settings), boards.board_from_url(settings.board_url)
    seen_files, seen_versions = set(), set()
    while True:
        now = time.time()
        for name in sorted({f.name for f in zone.files()} - seen_files):
            print(json.dumps({"landed": name, "at": now}), flush=True)
            seen_files.add(name)
        for version in sorted(versions(board) - seen_versions):
            print(json.dumps({"version": version, "at": now}), flush=True)
            seen_versions.add(version)
        time.sleep(POLL_SECONDS)


if __name__ == "__main__":
    main()
