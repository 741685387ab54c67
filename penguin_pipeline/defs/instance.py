"""The embedded Dagster instance (SQLite files under DAGSTER_HOME), made cheaper to write.

Dagster opens a new SQLite connection for nearly every read and write of its run and event
storage, and SQLite flushes the disk (fdatasync) at each commit and at each last close of a
database in WAL mode: over a thousand flushes in one `penguin-pipeline run`, a large share of a
first run's time (README, "Where a first run's time goes"). With `synchronous=OFF` SQLite hands
the writes to the operating system and goes on: a killed process loses nothing, only an operating
system crash or power loss can damage the run history. That trade is made for the local instance
alone; the production profile keeps its history in PostgreSQL, and the warehouse, the board and
the landing zone are not SQLite.
"""

from __future__ import annotations

import sqlite3

from sqlalchemy import event
from sqlalchemy.engine import Engine


def _without_flushes(dbapi_connection, _record) -> None:
    if isinstance(dbapi_connection, sqlite3.Connection):
        dbapi_connection.execute("PRAGMA synchronous=OFF")


def write_history_without_flushes() -> None:
    """From now on in this process, every SQLite connection SQLAlchemy opens skips the flushes."""
    if not event.contains(Engine, "connect", _without_flushes):
        event.listen(Engine, "connect", _without_flushes)
