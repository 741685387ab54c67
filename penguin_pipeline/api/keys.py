"""API keys with scopes, as plain functions. Keys are kept only as SHA-256 digests and never logged.

An entry is `scope[,scope]:key`, e.g. `predict:abc123` or `predict,admin:s3cret`. Entries come
from PENGUIN_API_KEYS (separated by ";" or newlines) and/or the file PENGUIN_API_KEYS_FILE (one
entry per line, "#" starts a comment). No entry at all means the API is open.
Clients send the key as `Authorization: Bearer <key>` (or `Key <key>`, as vetiver's Connect
examples do) or as `X-API-Key: <key>`.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from pathlib import Path

SCOPES = ("predict", "admin")


class KeyConfigError(ValueError):
    pass


class AuthError(Exception):
    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def _digest(key: str) -> bytes:
    return hashlib.sha256(key.encode()).digest()


def parse_entries(text: str, origin: str) -> list[tuple[bytes, frozenset[str]]]:
    entries = []
    for number, raw in enumerate(text.replace(";", "\n").splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        scopes_text, sep, key = line.partition(":")
        key = key.strip()
        scopes = frozenset(s.strip() for s in scopes_text.split(",") if s.strip())
        where = f"{origin} entry {number}"  # never the key itself
        if not sep or not key:
            raise KeyConfigError(f"{where}: expected 'scope[,scope]:key'")
        unknown = sorted(scopes - set(SCOPES))
        if unknown or not scopes:
            raise KeyConfigError(f"{where}: scopes must be among {', '.join(SCOPES)}; got {', '.join(unknown) or 'none'}")
        entries.append((_digest(key), scopes))
    return entries


@dataclass(frozen=True)
class KeyRing:
    entries: tuple[tuple[bytes, frozenset[str]], ...]

    @classmethod
    def load(cls, keys: str | None, keys_file: Path | None) -> KeyRing:
        entries = parse_entries(keys, "PENGUIN_API_KEYS") if keys else []
        if keys_file is not None:
            try:
                text = Path(keys_file).read_text()
            except OSError as exc:
                raise KeyConfigError(f"cannot read PENGUIN_API_KEYS_FILE {keys_file}: {exc.strerror}") from exc
            entries += parse_entries(text, str(keys_file))
        return cls(tuple(entries))

    @property
    def open(self) -> bool:
        return not self.entries

    def describe(self) -> str:
        if self.open:
            return "no API keys configured: the API is OPEN (anyone who can reach it may predict and reload)"
        by_scope = {s: sum(s in scopes for _, scopes in self.entries) for s in SCOPES}
        return f"{len(self.entries)} API key(s) configured ({', '.join(f'{n} with {s}' for s, n in by_scope.items())})"

    def scopes_for(self, key: str) -> frozenset[str] | None:
        digest = _digest(key)
        found = None
        for known, scopes in self.entries:  # compare with every entry: no early exit to time
            if hmac.compare_digest(known, digest):
                found = scopes
        return found

    def check(self, authorization: str | None, x_api_key: str | None, scope: str) -> None:
        """Raise AuthError (401 no/unknown key, 403 key without `scope`) unless allowed."""
        if self.open:
            return
        key = (x_api_key or "").strip()
        if not key and authorization:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() in ("bearer", "key"):
                key = value.strip()
        if not key:
            raise AuthError(401, f"an API key is required: send 'Authorization: Bearer <key>' or 'X-API-Key: <key>' (scope '{scope}')")
        scopes = self.scopes_for(key)
        if scopes is None:
            raise AuthError(401, "the API key is not valid")
        if scope not in scopes:
            raise AuthError(403, f"this API key does not have the '{scope}' scope")
