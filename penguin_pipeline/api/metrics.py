"""The API's Prometheus metrics (GET /metrics), with prometheus-client.

Per request: one pure-ASGI wrapper counts the answer and times it by route template (never the
raw path: a scanner's random URLs would make a series each) and status. What the served model is
and how fresh it is are read from the ModelHolder when scraped, so a swap needs no bookkeeping
and costs requests nothing. Each app has its own registry: several apps in one process (tests)
do not collide, and nothing else's metrics leak into the API's.
"""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from .registry import ModelHolder

# What GET /metrics may answer (each with its format's version as a parameter).
EXPOSITION_TYPES = ("text/plain", "application/openmetrics-text")
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Why a request was refused, by status, unless the code that refused it named a finer reason
# (request.state.refusal: no_key, invalid_key, missing_scope, too_many_records, ...).
REASONS = {
    400: "unreadable_body",
    401: "unauthorized",
    403: "missing_scope",
    404: "not_found",
    405: "method_not_allowed",
    409: "load_failed",
    413: "too_large",
    422: "invalid_input",
}


class ApiMetrics:
    def __init__(self, holder: ModelHolder):
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "penguin_api_requests",
            "Requests answered, by route template, method and status",
            ["route", "method", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "penguin_api_request_duration_seconds",
            "Time from the request's arrival to the end of its answer",
            ["route", "method", "status"],
            buckets=BUCKETS,
            registry=self.registry,
        )
        # Records predicted: a plain number, read when scraped (PredictionsCollector). /predict
        # runs on the event loop's one thread, and a Counter's lock cost it ~1 us a request.
        self.predicted = 0
        self.registry.register(PredictionsCollector(self))
        self.refusals = Counter(
            "penguin_api_refused_requests",
            "Requests refused (4xx), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.registry.register(ServedModelCollector(holder))
        self._children: dict[tuple, tuple] = {}  # (route, method, status) -> its two series

    def observe(self, route: str, method: str, status: int, seconds: float, refusal) -> None:
        key = (route, method, status)
        if (children := self._children.get(key)) is None:  # .labels() is the costly part
            labels = (route, method, str(status))
            children = (self.requests.labels(*labels), self.latency.labels(*labels))
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)
        if 400 <= status < 500:
            self.refusals.labels(refusal or REASONS.get(status, str(status))).inc()

    def exposition(self, accept: str | None) -> tuple[bytes, str]:
        """The metrics in the format the scraper's Accept header prefers (the library decides)."""
        encoder, media_type = choose_encoder(accept or "")
        return encoder(self.registry), media_type


class PredictionsCollector(Collector):
    def __init__(self, metrics: ApiMetrics):
        self.metrics = metrics

    def collect(self):
        yield CounterMetricFamily(
            "penguin_api_predictions",
            "Records predicted (rows, not requests)",
            value=self.metrics.predicted,
        )


class ServedModelCollector(Collector):
    """The served version and its data snapshot (labels of a gauge of 1, Prometheus' "info"
    idiom), and the seconds since the board was last read successfully."""

    def __init__(self, holder: ModelHolder):
        self.holder = holder

    def collect(self):
        holder, current = self.holder, self.holder.current
        served = GaugeMetricFamily(
            "penguin_api_served_model",
            "1 for the model version served, with its data snapshot",
            labels=["version", "data_snapshot", "pinned"],
        )
        if current is not None:
            pinned = "true" if holder.pinned else "false"
            served.add_metric([current.version, current.data_snapshot or "", pinned], 1)
        yield served
        age = GaugeMetricFamily(
            "penguin_api_model_refresh_age_seconds",
            "Seconds since the API last read the board and served its champion (or pin)",
        )
        if holder.last_success is not None:
            age.add_metric([], max(0.0, time.time() - holder.last_success))
        yield age
        yield GaugeMetricFamily(
            "penguin_api_model_degraded",
            "1 while /health says degraded (a version failed to load, the board unreadable)",
            value=1 if holder.health()["status"] == "degraded" else 0,
        )


class Instrumented:
    """ASGI wrapper counting and timing every HTTP request; the route's template is known only
    after routing, from the scope the router filled in."""

    def __init__(self, app, metrics: ApiMetrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: dict, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start, status = time.perf_counter(), 500  # an exception escaping the app is a 500

        async def send_status(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            refusal = scope.get("state", {}).get("refusal")
            seconds = time.perf_counter() - start
            self.metrics.observe(template, scope["method"], status, seconds, refusal)
