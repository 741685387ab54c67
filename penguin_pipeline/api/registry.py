"""Which model version the API serves, and swapping it without downtime (no web framework here).

A request reads `holder.current` once and uses that ServedModel throughout, so a swap (one
assignment) never mixes two versions in one answer. A version is read and checked before the
swap, off the event loop; one that fails to load is logged, remembered, and the old one serves on.
Versions are always resolved first and loaded by name: vetiver's `from_pin` without a version
reads the pickle and the metadata in two steps, which a version written in between can mismatch.
"""

import logging
import threading
import time
from typing import NamedTuple

from penguin_pipeline.processing.features import LinearPredictor, pinned_predictor
from penguin_pipeline.storage import boards
from penguin_pipeline.storage.s3 import S3StorageError

log = logging.getLogger("penguin_pipeline.api")
NO_SUCH_VERSION = "no such version"  # pin()'s outcome for a name that is no version on the board


class ServedModel(NamedTuple):
    vetiver: object  # vetiver.VetiverModel: /metadata and /prototype show it
    version: str
    data_snapshot: str | None
    predictor: LinearPredictor  # .spec: what /predict accepts


class ModelHolder:
    """Serves the champion (the board's newest promotion decision, else newest version) or a pin."""

    def __init__(self, board, pinned: str | None = None):
        self.board = board
        self.pinned = pinned
        self.current: ServedModel | None = None
        self.last_error: dict | None = None
        self.failed: set[str] = set()
        self.last_check: float | None = None
        self.last_success: float | None = None  # the board read and its target served
        self.damaged: list[tuple[str, str]] = []  # newer versions the listing passed over, and why
        self._lock = threading.Lock()  # one load at a time (poller, admin reload, pin)

    def refresh(self, force: bool = False) -> dict:
        """Serve the pinned version, else the champion, if not served yet. Never raises."""
        with self._lock:
            self.last_check = time.time()
            try:
                target = self.pinned or self._champion()
            except Exception as exc:
                reason = f"cannot list versions of {boards.MODEL_PIN}: {type(exc).__name__}: {exc}"
                return self._failed(None, reason, "the board could not be listed")
            if target is None:
                return self._failed(None, f"no {boards.MODEL_PIN} pin on the board yet")
            if self.current is not None and self.current.version == target:
                self.last_error = None  # the board answered and has nothing newer: failure over
                self.last_success = self.last_check
                return self.status("unchanged")
            if target in self.failed and not force:
                return self.status("skipped: this version failed to load before")
            if not self._serve(target):
                return self.status("failed")
            self.last_success = self.last_check
            return self.status("swapped")

    def _champion(self) -> str | None:
        """Version ids and the decision's data.txt only: no model file is read per poll."""
        newest, self.damaged = boards.newest_listed(self.board, boards.MODEL_PIN)
        decision = boards.latest_decision(self.board)
        return (decision or {}).get("champion") or (newest.version if newest else None)

    def champion_version(self) -> str | None:
        """The champion now (the newest decision's, else the newest version), read from the board
        on each call: a promotion shows at once, whichever version this API serves (a pin)."""
        decision = boards.latest_decision(self.board)
        if decision and decision.get("champion"):
            return decision["champion"]
        newest, _ = boards.newest_listed(self.board, boards.MODEL_PIN)
        return newest.version if newest else None

    def pin(self, version: str) -> dict:
        """Serve exactly `version` from now on; the old one stays if it cannot load."""
        with self._lock:
            served = self.current is not None and self.current.version == version
            if not (served or boards.has_version(self.board, boards.MODEL_PIN, version)):
                # a caller's typo: not a load failure, so /health and last_error stay as they are
                return self.status(NO_SUCH_VERSION)
            if not (served or self._serve(version)):
                return self.status("failed")
            self.pinned = version
            log.info("model pinned to version %s", version)
            return self.status("pinned")

    def unpin(self) -> dict:
        with self._lock:
            self.pinned = None
        log.info("model unpinned: following the newest version")
        return self.refresh(force=True)

    def _serve(self, version: str) -> bool:
        """Load `version` and swap it in; False if it cannot serve (the old one serves on)."""
        try:  # its files checked against its data.txt first: garbage is never unpickled
            model = boards.read_model(self.board, version=version)
            snapshot = (model.metadata.user or {}).get("data_snapshot")
            served = ServedModel(model, version, snapshot, pinned_predictor(model))
        except Exception as exc:  # corrupt pickle, missing package, pipeline and predictor disagree
            name = type(exc).__name__
            reason = f"cannot read {boards.MODEL_PIN} version {version}: {name}: {exc}"
            summary = f"version {version} cannot be loaded ({name})"  # for /health: no storage
            if isinstance(exc, boards.DamagedVersion):
                summary = f"version {version} on the board is damaged: {exc.problem}"
            if isinstance(exc, S3StorageError):  # S3 down or 5xx: not the version's fault, retried
                summary = f"the board could not be read for version {version}"
            else:  # not retried until forced: no retry storm on every poll
                self.failed.add(version)
            self._failed(version, reason, summary)
            return False
        old, self.current = self.current, served  # the one atomic step
        self.failed.discard(version)
        self.last_error = None
        replacing = f", replacing {old.version}" if old else ""
        log.info(f"serving {boards.MODEL_PIN} version {version}{replacing}")
        return True

    def _failed(self, version: str | None, reason: str, summary: str | None = None) -> dict:
        self.last_error = {"version": version, "reason": reason, "summary": summary or reason}
        self.last_error["at"] = time.time()
        serving = self.current.version if self.current else "nothing"
        log.error("%s; still serving %s", reason, serving)
        return self.status("failed")

    def health(self) -> dict:
        """ "ok", or "degraded" with the problem: names versions, never storage (a public route)."""
        current = self.current
        problems = [self.last_error["summary"]] if self.last_error else []
        damaged = [(v, f"version {v} on the board is damaged: {why}") for v, why in self.damaged]
        problems += [p for v, p in damaged if not any(v in known for known in problems)]
        if problems and current is not None:
            problems.append(f"still serving version {current.version}")
        return {
            "status": "degraded" if problems or current is None else "ok",
            "model_version": current.version if current else None,
            "problem": "; ".join(problems) or None,
        }

    def status(self, outcome: str | None = None) -> dict:
        """health(), and what an operator needs besides (the full error names storage)."""
        return {
            **self.health(),
            "outcome": outcome,
            "pinned_version": self.pinned,
            "last_check": self.last_check,
            "last_error": self.last_error,
        }


class SummaryHolder:
    """The newest penguin_summary pin (species x sex), read again only when a newer version is
    listed: a request costs one listing, and the rows are parsed once per version."""

    def __init__(self, board):
        self.board = board
        self.cached: tuple[str, list[dict]] | None = None
        self._lock = threading.Lock()

    def current(self) -> tuple[str, list[dict]] | None:
        newest, _ = boards.newest_listed(self.board, boards.SUMMARY_PIN)
        if newest is None:
            return None
        with self._lock:
            if self.cached is None or self.cached[0] != newest.version:
                rows = self.board.pin_read(boards.SUMMARY_PIN, newest.version)
                self.cached = (newest.version, rows)
            return self.cached
