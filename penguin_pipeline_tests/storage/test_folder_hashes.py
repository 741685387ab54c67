"""A folder landing zone hashes a file again only when it may have changed."""

from __future__ import annotations

import os
import time
from pathlib import Path

from penguin_pipeline.storage import landing, locations


def test_a_settled_unchanged_file_is_not_read_again_and_a_rewrite_is(tmp_path, monkeypatch):
    zone = landing.landing_from_url(str(tmp_path / "raw"), str(tmp_path / "quarantine"))
    path = tmp_path / "raw" / "season.csv"
    path.parent.mkdir()
    path.write_text("a,b\n1,2\n")
    hour_ago = time.time_ns() - 3600 * 10**9
    os.utime(path, ns=(hour_ago, hour_ago))
    reads = []
    real_hash = locations.file_hash
    monkeypatch.setattr(
        locations, "file_hash", lambda p: reads.append(Path(p).name) or real_hash(p)
    )

    first = zone.files()[0].content_hash
    assert zone.files()[0].content_hash == first and reads == ["season.csv"]
    path.write_text(
        "a,b\n1,3\n"
    )  # same size, new content, just now: hashed again, and not trusted yet
    changed = zone.files()[0].content_hash
    assert changed != first and zone.files()[0].content_hash == changed
    assert reads == ["season.csv"] * 3
