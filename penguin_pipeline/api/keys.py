"""API keys with scopes, as a FastAPI security scheme. Kept as SHA-256 digests, never logged.

Entries `scope[,scope]:key` come from PENGUIN_API_KEYS (";"-separated) and/or the file
PENGUIN_API_KEYS_FILE (one a line, "#" comments); with neither the API is open. The file is looked
at (one stat) on each keyed request and re-read when it changed; a bad one is refused whole until
fixed (the environment's keys keep working), and at start stops the API. A route declares what it
needs with `Security(keys, scopes=[...])` (OpenAPI and Swagger's Authorize button then know the
scheme), or nothing with `openapi_extra=PUBLIC`, OpenAPI's own "no security".
"""

import hashlib
import hmac
import logging
from pathlib import Path

from fastapi import HTTPException, Request
from fastapi.security import HTTPBearer, SecurityScopes
from fastapi.security.utils import get_authorization_scheme_param

SCOPES = ("predict", "admin")
PUBLIC = {"security": []}
log = logging.getLogger("penguin_pipeline.api")


class KeyConfigError(ValueError):
    pass


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_entries(text: str, origin: str) -> list[tuple[bytes, frozenset[str]]]:
    entries = []
    for number, raw in enumerate(text.replace(";", "\n").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        scopes_text, sep, key = map(str.strip, line.partition(":"))
        scopes = frozenset(s.strip() for s in scopes_text.split(",") if s.strip())
        where = f"{origin} entry {number}"  # never the key itself
        if not sep or not key:
            raise KeyConfigError(f"{where}: expected 'scope[,scope]:key'")
        unknown = sorted(scopes - set(SCOPES))
        if unknown or not scopes:
            got = ", ".join(unknown) or "none"
            raise KeyConfigError(f"{where}: scopes must be among {', '.join(SCOPES)}; got {got}")
        entries.append((_digest(key), scopes))
    return entries


class KeyRing(HTTPBearer):
    """The keys, checked for each request against the scopes its route declares."""

    def __init__(self, keys: str | None, keys_file: Path | None):
        description = "Authorization: Bearer <key> (or Key <key>), or X-API-Key: <key>"
        super().__init__(scheme_name="api_key", description=description, auto_error=False)
        self.from_env = parse_entries(keys, "PENGUIN_API_KEYS") if keys else []
        self.file = Path(keys_file) if keys_file else None
        self.open = not self.from_env and self.file is None
        self.entries, self.problem, self._stamp = self.from_env, None, None
        if self.file is not None and self._reread():
            raise KeyConfigError(self.problem)

    def _reread(self) -> str | None:
        """Re-read the file if it changed since the last look; the problem if it cannot be used."""
        try:
            stat = self.file.stat()
            if (stamp := (stat.st_mtime_ns, stat.st_size, stat.st_ino)) != self._stamp:
                self._stamp = stamp
                self.entries = self.from_env + parse_entries(self.file.read_text(), str(self.file))
                self.problem = None
                log.info("read %s: %s", self.file, self.describe())
        except (OSError, ValueError) as exc:  # missing, unreadable, not text, or a bad entry
            why = str(exc) if isinstance(exc, KeyConfigError) else f"cannot read {self.file}"
            problem = f"PENGUIN_API_KEYS_FILE: {why}"
            if problem != self.problem:
                log.error("%s: its keys are refused until it is fixed", problem)
            self.entries, self.problem = self.from_env, problem
        return self.problem

    def describe(self) -> str:
        if self.open:
            return "no API keys configured: the API is OPEN (anyone may predict and reload)"
        by_scope = ", ".join(f"{sum(s in sc for _, sc in self.entries)} with {s}" for s in SCOPES)
        return f"{len(self.entries)} API key(s) configured ({by_scope})"

    def requirement(self, scopes: SecurityScopes) -> dict:
        """OpenAPI's security requirement of a route that calls the ring itself (what
        `Security(keys, scopes=...)` would declare)."""
        return {"security": [{self.scheme_name: list(scopes.scopes)}]}

    async def __call__(self, request: Request, security_scopes: SecurityScopes) -> None:
        """401 without or with an unknown key, 403 for a key without one of the route's scopes."""
        if self.open:
            return
        if self.file is not None:
            self._reread()
        scheme, value = get_authorization_scheme_param(request.headers.get("authorization"))
        key = request.headers.get("x-api-key", "").strip()
        key = key or (value.strip() if scheme.lower() in ("bearer", "key") else "")
        needed, digest, scopes = security_scopes.scopes, _digest(key), None
        if not key:
            request.state.refusal = "no_key"  # the metrics' reason (api/metrics.py)
            send = "send 'Authorization: Bearer <key>' or 'X-API-Key: <key>'"
            detail = f"an API key is required: {send} (scope '{' '.join(needed)}')"
            raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})
        for known, granted in self.entries:  # compare with every entry: no early exit to time
            if hmac.compare_digest(known, digest):
                scopes = granted
        if scopes is None:
            request.state.refusal = "invalid_key"
            raise HTTPException(401, "the API key is not valid", {"WWW-Authenticate": "Bearer"})
        if missing := [scope for scope in needed if scope not in scopes]:
            request.state.refusal = "missing_scope"
            raise HTTPException(403, f"this API key does not have the '{missing[0]}' scope")
