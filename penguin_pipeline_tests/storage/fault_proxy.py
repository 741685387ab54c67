"""A fault-injecting HTTP proxy in front of an S3 endpoint (moto), for the failure tests.

It listens on 127.0.0.1 at a free port and forwards every request to the upstream endpoint, except
those a script picks out: answer with an HTTP error (500, 503...), drop the connection without an
answer, or answer late. A rule matches by method and a substring of the path, and serves `times`
faults (None: every matching request until cleared). Every request is recorded with what happened
to it, so a test can prove that a fault was met and that the same request was then retried.

S3 clients sign the Host header; the proxy passes it through unchanged, and moto (without
authentication) does not check it.
"""

from __future__ import annotations

import http.client
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "transfer-encoding",
    "proxy-connection",
    "te",
    "upgrade",
    "expect",
}
FORWARDED = "forwarded"


@dataclass
class Rule:
    kind: str  # "status", "drop" or "slow"
    times: int | None  # faults left to serve; None = every matching request
    method: str | None = None
    path_contains: str | None = None
    status: int = 503
    seconds: float = 0.0

    def matches(self, method: str, path: str) -> bool:
        return (
            (self.times is None or self.times > 0)
            and (self.method is None or self.method == method)
            and (self.path_contains is None or self.path_contains in path)
        )


@dataclass
class Seen:
    method: str
    path: str
    outcome: str  # FORWARDED, "status 503", "dropped" or "slow 2.0 s"
    at: float = field(default_factory=time.monotonic)


class FaultProxy:
    def __init__(self, upstream_url: str):
        upstream = urlsplit(upstream_url)
        self.upstream = (upstream.hostname, upstream.port)
        self.rules: list[Rule] = []
        self.seen: list[Seen] = []
        self.in_flight = 0  # requests being handled (a "slow" one is still held, then forwarded)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # -- the script ---------------------------------------------------------------------------

    def fail(
        self,
        times: int | None,
        status: int = 503,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> Rule:
        return self._add(Rule("status", times, method, path_contains, status=status))

    def drop(
        self, times: int | None, method: str | None = None, path_contains: str | None = None
    ) -> Rule:
        return self._add(Rule("drop", times, method, path_contains))

    def slow(
        self,
        times: int | None,
        seconds: float,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> Rule:
        return self._add(Rule("slow", times, method, path_contains, seconds=seconds))

    def clear(self) -> None:
        with self._lock:
            self.rules.clear()

    def _add(self, rule: Rule) -> Rule:
        with self._lock:
            self.rules.append(rule)
        return rule

    def take(self, method: str, path: str) -> Rule | None:
        """The first rule this request triggers (one fault used up), or None to forward it."""
        with self._lock:
            for rule in self.rules:
                if rule.matches(method, path):
                    if rule.times is not None:
                        rule.times -= 1
                    return rule
        return None

    def record(self, method: str, path: str, outcome: str) -> None:
        with self._lock:
            self.seen.append(Seen(method, path, outcome))

    # -- what a test reads -----------------------------------------------------------------------

    def faults(self) -> list[Seen]:
        return [s for s in self.seen if s.outcome != FORWARDED]

    def retried_after_fault(self, fault: Seen) -> bool:
        """The same request went through to the upstream after the fault."""
        return any(
            s.outcome == FORWARDED
            and s.method == fault.method
            and s.path == fault.path
            and s.at >= fault.at
            for s in self.seen
        )

    def settle(self, timeout_s: float = 15) -> None:
        """Wait until every request the proxy took has been answered: a request held by a "slow"
        fault reaches the upstream after its client gave up, and could otherwise land later (in
        another test's assertions, or after the bucket was emptied)."""
        deadline = time.monotonic() + timeout_s
        while self.in_flight:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.in_flight} request(s) still in the proxy")
            time.sleep(0.05)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)


def _handler_for(proxy: FaultProxy):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = (
            "HTTP/1.1"  # so the server answers "Expect: 100-continue" for large uploads
        )

        def _serve(self):
            with proxy._lock:
                proxy.in_flight += 1
            try:
                self._serve_counted()
            finally:
                with proxy._lock:
                    proxy.in_flight -= 1

        def _serve_counted(self):
            body = self._read_body()
            self.close_connection = True  # one request per connection keeps the relay simple
            rule = proxy.take(self.command, self.path)
            if rule is not None and rule.kind == "drop":
                proxy.record(self.command, self.path, "dropped")
                return  # the handler returns without a word; the socket closes
            if rule is not None and rule.kind == "status":
                proxy.record(self.command, self.path, f"status {rule.status}")
                self._answer(
                    rule.status, {"Content-Type": "application/xml"}, _error_xml(rule.status)
                )
                return
            if rule is not None:
                proxy.record(self.command, self.path, f"slow {rule.seconds:g} s")
                time.sleep(rule.seconds)
            else:
                proxy.record(self.command, self.path, FORWARDED)
            self._forward(body)

        do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _serve

        def _read_body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def _forward(self, body: bytes) -> None:
            upstream = http.client.HTTPConnection(*proxy.upstream, timeout=30)
            try:
                headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
                upstream.request(self.command, self.path, body=body or None, headers=headers)
                response = upstream.getresponse()
                content = response.read()
                kept = {k: v for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP}
                self._answer(response.status, kept, content)
            finally:
                upstream.close()

        def _answer(self, status: int, headers: dict, content: bytes) -> None:
            try:
                self.send_response(status)
                for name, value in headers.items():
                    if name.lower() != "content-length" or self.command == "HEAD":
                        self.send_header(name, value)
                if self.command != "HEAD":
                    self.send_header("Content-Length", str(len(content)))
                self.send_header("Connection", "close")
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(content)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up first (a read timeout during a slow answer)

        def log_message(self, *args):
            pass

    return Handler


def _error_xml(status: int) -> bytes:
    code = {500: "InternalError", 503: "ServiceUnavailable"}.get(status, "InternalError")
    return (
        f"<Error><Code>{code}</Code><Message>injected by the test proxy</Message></Error>".encode()
    )
