"""Which model version the API serves, and swapping it without downtime (no web framework here).

A request reads `holder.current` once and uses that ServedModel for everything (validation
rules, predictor, version, snapshot), so a swap can never mix two versions in one answer: the swap
is one attribute assignment, and the old model stays alive until its last request finishes.
Loading (unpickling, self-check) happens before the swap, off the event loop; a version that fails
to load is logged with the reason, remembered, and the old one keeps serving.

vetiver trap: `VetiverModel.from_pin(board, name)` without a version reads the pickle and then the
metadata in two steps; a version written in between pairs one version's model with another's
metadata. We always resolve the version first and load it by name.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from penguin_pipeline.storage import boards
from penguin_pipeline.storage.s3 import S3StorageError

from .inputs import InputRules
from .predictor import build_predictor, grid_columns

log = logging.getLogger("penguin_pipeline.api")


class ModelLoadError(Exception):
    """A version cannot be served. `transient`: the storage failed, not the version (retry it later).

    `summary` is the problem without storage locations or exception text, for the public /health.
    """

    def __init__(self, message: str, transient: bool = False, summary: str | None = None):
        super().__init__(message)
        self.transient = transient
        self.summary = summary or message


@dataclass(frozen=True)
class ServedModel:
    vetiver: object  # vetiver.VetiverModel
    version: str
    data_snapshot: str | None
    rules: InputRules
    predictor: object
    features: list[str]
    loaded_at: float = field(default_factory=time.time)

    def facts(self) -> dict:
        return {"model_version": self.version, "data_snapshot": self.data_snapshot}


def load_served(board, version: str, max_batch: int, name: str = boards.MODEL_PIN) -> ServedModel:
    """Read, check and prepare one version; ModelLoadError says why it cannot serve."""
    try:
        model = boards.read_model(board, name=name, version=version)
    except S3StorageError as exc:  # S3 down or answering 5xx: says nothing about this version
        raise ModelLoadError(f"cannot read {name} version {version}: {exc}", transient=True,
                             summary=f"the board could not be read for version {version}") from exc
    except boards.DamagedVersion as exc:  # checked before unpickling: garbage is never loaded
        raise ModelLoadError(f"cannot read {name} version {version}: {exc}",
                             summary=f"version {version} on the board is damaged: {exc.problem}") from exc
    except Exception as exc:  # corrupt pickle, missing package, missing files: all mean "cannot serve"
        raise ModelLoadError(f"cannot read {name} version {version}: {type(exc).__name__}: {exc}",
                             summary=f"version {version} cannot be loaded ({type(exc).__name__})") from exc
    user = (model.metadata.user or {}) if model.metadata else {}
    categories = user.get("categories")
    features = user.get("features")
    if not categories or not features:
        raise ModelLoadError(f"{name} version {version} has no categories/features in its metadata")
    numeric = [f for f in features if f not in categories]
    categories = {f: categories[f] for f in features if f in categories}  # errors in field order
    try:
        rules = InputRules.for_model(categories, numeric, max_batch)
        predictor = build_predictor(model.model, features, {k: list(v) for k, v in rules.categories.items()}, rules.bounds)
        smoke = grid_columns({k: list(v) for k, v in rules.categories.items()},
                             {f: [low, high] for f, (low, high) in rules.bounds.items()})
        predictor.predict(smoke)  # every allowed category must be predictable
    except Exception as exc:
        raise ModelLoadError(f"{name} version {version} cannot predict: {type(exc).__name__}: {exc}",
                             summary=f"version {version} cannot predict ({type(exc).__name__})") from exc
    return ServedModel(vetiver=model, version=version, data_snapshot=user.get("data_snapshot"), rules=rules,
                       predictor=predictor, features=list(features))


class ModelHolder:
    """The served version; follows the newest on the board unless an operator pins one."""

    def __init__(self, board, max_batch: int, pinned: str | None = None, name: str = boards.MODEL_PIN,
                 loader=load_served):
        self.board = board
        self.name = name
        self.max_batch = max_batch
        self.pinned = pinned
        self.current: ServedModel | None = None
        self.last_error: dict | None = None
        self.failed: set[str] = set()
        self.swaps = 0
        self.last_check: float | None = None
        self.damaged: list[tuple[str, str]] = []  # newer versions the last listing passed over, with why
        self._loader = loader
        self._lock = threading.Lock()  # one load at a time (poller, admin reload, pin)
        self.listeners = []  # called with the new ServedModel after each swap

    def newest_version(self) -> str | None:
        newest, self.damaged = boards.newest_listed(self.board, self.name)  # ids only: no file read per poll
        return newest.version if newest else None

    def target_version(self) -> str | None:
        return self.pinned or self.newest_version()

    def refresh(self, force: bool = False) -> dict:
        """Serve the target version (pinned, else newest) if it is not served yet. Never raises for a bad pin."""
        with self._lock:
            self.last_check = time.time()
            try:
                target = self.target_version()
            except Exception as exc:
                return self._failed(None, f"cannot list versions of {self.name}: {type(exc).__name__}: {exc}",
                                    "the board could not be listed")
            if target is None:
                return self._failed(None, f"no {self.name} pin on the board yet")
            if self.current is not None and self.current.version == target:
                self.last_error = None  # the board answered and serves nothing newer: an old failure is over
                return self.status("unchanged")
            if target in self.failed and not force:
                return self.status("skipped: this version failed to load before")
            try:
                self._swap(self._loader(self.board, target, self.max_batch, self.name))
            except ModelLoadError as exc:
                if not exc.transient:
                    self.failed.add(target)
                return self._failed(target, str(exc), exc.summary)
            return self.status("swapped")

    def pin(self, version: str) -> dict:
        """Serve exactly `version` from now on; the old one stays if it cannot load (ModelLoadError)."""
        with self._lock:
            if self.current is None or self.current.version != version:
                try:
                    served = self._loader(self.board, version, self.max_batch, self.name)
                except ModelLoadError as exc:
                    self._failed(version, str(exc), exc.summary)
                    raise
                self._swap(served)
            self.pinned = version
            log.info("model pinned to version %s", version)
            return self.status("pinned")

    def unpin(self) -> dict:
        with self._lock:
            self.pinned = None
        log.info("model unpinned: following the newest version")
        return self.refresh(force=True)

    def _swap(self, served: ServedModel) -> None:
        old = self.current
        self.current = served  # the one atomic step
        self.swaps += 1
        self.failed.discard(served.version)
        self.last_error = None
        log.info("serving %s version %s (data snapshot %s, %s predictor)%s", self.name, served.version,
                 served.data_snapshot, served.predictor.kind, f", replacing {old.version}" if old else "")
        for listener in self.listeners:
            listener(served)

    def _failed(self, version: str | None, reason: str, summary: str | None = None) -> dict:
        self.last_error = {"version": version, "reason": reason, "summary": summary or reason, "at": time.time()}
        serving = self.current.version if self.current else None
        log.error("%s; still serving %s", reason, serving or "nothing")
        return self.status("failed")

    def health(self) -> dict:
        """"ok", or "degraded" with the problem: the newest version cannot be served, or the board
        cannot be read. Names versions, never storage locations or credentials (the route is public)."""
        current = self.current
        problems = [self.last_error["summary"]] if self.last_error else []
        problems += [f"version {version} on the board is damaged: {problem}" for version, problem in self.damaged
                     if not any(version in p for p in problems)]
        if problems and current is not None:
            problems.append(f"still serving version {current.version}")
        return {"status": "degraded" if problems or current is None else "ok",
                "model_version": current.version if current else None,
                "problem": "; ".join(problems) or None}

    def status(self, outcome: str | None = None) -> dict:
        current = self.current
        return {
            "outcome": outcome,
            "model_version": current.version if current else None,
            "data_snapshot": current.data_snapshot if current else None,
            "predictor": current.predictor.kind if current else None,
            "pinned_version": self.pinned,
            "swaps": self.swaps,
            "last_check": self.last_check,
            "last_error": self.last_error,
        }
