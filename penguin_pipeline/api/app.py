"""The prediction API: vetiver's VetiverAPI, with our /predict, admin routes, keys and version following.

Kept thin: input rules live in inputs.py, predictions in predictor.py, versions in registry.py,
keys in keys.py. What this module adds is HTTP: status codes, headers, the OpenAPI description,
the polling task, and running CPU-heavy batches off the event loop.

vetiver's /ping, /metadata, /prototype (and / -> /__docs__) are vetiver's own routes; they read
`api.model`, which here is always the model currently served. vetiver's /predict is replaced: stock
VetiverAPI validates `List[prototype]` with FastAPI, which (1) answers vetiver's own client with
422 because the client posts without a JSON content type (vetiver-python issue 241), (2) answers 500
to unknown categories and to an empty list, and (3) runs `pipeline.predict` (~6 ms per row) on the
event loop. Ours reads the raw body whatever its content type and keeps vetiver's response shape
`{"predict": [...]}`, adding which model version and data snapshot answered.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import anyio
import orjson
from fastapi import FastAPI
from fastapi.exception_handlers import request_validation_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from vetiver import VetiverAPI

from penguin_pipeline.settings import Settings, load_settings
from penguin_pipeline.storage import boards

from .docs import add_offline_docs
from .inputs import InputError, parse_json, parse_records
from .keys import AuthError, KeyRing
from .registry import ModelHolder, ModelLoadError

log = logging.getLogger("penguin_pipeline.api")

# Bodies up to this size are parsed, checked and predicted on the event loop (tens of µs for a
# few rows); larger ones go to a worker thread so one big batch does not stall other requests.
INLINE_BODY_BYTES = 8_192

PROTECTED = {"/predict": "predict", "/metadata": "predict", "/prototype": "predict"}
ADMIN_PREFIX = "/admin"


class PinRequest(BaseModel):
    version: str = Field(min_length=1, max_length=200, description="a penguin_model version on the board")


class KeyMiddleware:
    """Pure ASGI (no per-request task like BaseHTTPMiddleware): checks keys before routing."""

    def __init__(self, app, keys: KeyRing):
        self.app = app
        self.keys = keys

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            path = scope["path"]
            needed = "admin" if path.startswith(ADMIN_PREFIX) else PROTECTED.get(path)
            if needed:
                headers = dict(scope["headers"])
                try:
                    self.keys.check(_header(headers, b"authorization"), _header(headers, b"x-api-key"), needed)
                except AuthError as exc:
                    extra = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
                    response = JSONResponse({"detail": exc.message}, status_code=exc.status, headers=extra)
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)


def _header(headers: dict, name: bytes) -> str | None:
    value = headers.get(name)
    return value.decode("latin-1") if value is not None else None


class PenguinAPI(VetiverAPI):
    """VetiverAPI whose model is whatever the holder serves now."""

    def __init__(self, holder: ModelHolder, app_factory):
        self.holder = holder
        self._building = True
        super().__init__(holder.current.vetiver, show_prototype=True, check_prototype=True, app_factory=app_factory)
        self._building = False

    @property
    def model(self):
        return self.holder.current.vetiver

    @model.setter
    def model(self, value):  # VetiverAPI.__init__ assigns it; the holder is the source of truth
        pass

    def vetiver_post(self, endpoint_fx, endpoint_name=None, **kw):
        if self._building and endpoint_name == "predict":
            return  # replaced by add_predict_route
        return super().vetiver_post(endpoint_fx, endpoint_name, **kw)

    def _custom_openapi(self):
        if self.app.openapi_schema:
            return self.app.openapi_schema
        schema = super()._custom_openapi()
        current = self.holder.current
        schema["info"]["description"] = (
            f"{current.vetiver.description}. Serving version {current.version} "
            f"(data snapshot {current.data_snapshot}). Batch limit: {current.rules.max_batch} records.")
        schema.setdefault("components", {})["securitySchemes"] = {
            "bearer": {"type": "http", "scheme": "bearer"},
            "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
        }
        for path, operations in schema["paths"].items():
            if path in PROTECTED or path.startswith(ADMIN_PREFIX):
                for operation in operations.values():
                    operation["security"] = [{"bearer": []}, {"apiKey": []}]
        return schema


def record_schema(served) -> dict:
    props = {f: {"type": "string", "enum": list(v), "description": f"one of {', '.join(v)}"}
             for f, v in served.rules.categories.items()}
    props.update({f: {"type": "number", "minimum": low, "maximum": high, "description": f"{low:g} to {high:g}"}
                  for f, (low, high) in served.rules.bounds.items()})
    example = served.vetiver.prototype.model_construct().model_dump() if served.vetiver.prototype else None
    schema = {"type": "object", "properties": props, "required": served.rules.fields, "title": "PenguinRecord"}
    if example:
        schema["example"] = example
    return schema


def predict_openapi(served) -> dict:
    record = record_schema(served)
    batch = {"type": "array", "items": record, "minItems": 1, "maxItems": served.rules.max_batch}
    error = {"description": "the input cannot be predicted; `detail` lists each problem with its location",
             "content": {"application/json": {"schema": {"type": "object", "properties": {"detail": {"type": "array"}}}}}}
    return {
        "requestBody": {
            "required": True,
            "description": "one record or a list of records (JSON; any content type is read as JSON)",
            "content": {"application/json": {"schema": {"anyOf": [record, batch]}}},
        },
        "responses": {
            "200": {"description": "one prediction per record, in order, with the model version and data snapshot",
                    "content": {"application/json": {"schema": {
                        "type": "object",
                        "properties": {"predict": {"type": "array", "items": {"type": "number"}},
                                       "model_version": {"type": "string"},
                                       "data_snapshot": {"type": "string"}}}}}},
            "413": {"description": f"more than {served.rules.max_batch} records, or a body too large"},
            "422": error,
            "401": {"description": "no API key, or an unknown one"},
            "403": {"description": "the key lacks the predict scope"},
        },
    }


def answer(served, body: bytes) -> tuple[int, bytes]:
    """Status and JSON body for one /predict request against one served version."""
    try:
        columns = parse_records(parse_json(body), served.rules)
    except InputError as exc:
        return exc.status, orjson.dumps({"detail": exc.errors})
    predictions = served.predictor.predict(columns)
    # orjson writes the shortest repr that reads back to the same float, like json (~20x faster).
    return 200, orjson.dumps({"predict": predictions, "model_version": served.version,
                              "data_snapshot": served.data_snapshot})


def add_predict_route(app: FastAPI, holder: ModelHolder) -> None:
    @app.post("/predict", name="predict", openapi_extra=predict_openapi(holder.current),
              summary="Predict body mass (g) for one record or a batch")
    async def predict():
        # Never reached: PredictFastPath (always installed by create_app) answers POST /predict
        # before routing. The route is here for its OpenAPI description and /docs.
        raise RuntimeError("POST /predict is answered by PredictFastPath")

    # The route's OpenAPI is fixed at creation; follow the served version's categories.
    def refresh_openapi(served):
        for route in app.router.routes:
            if getattr(route, "path", None) == "/predict" and hasattr(route, "openapi_extra"):
                route.openapi_extra = predict_openapi(served)
        app.openapi_schema = None

    holder.listeners.append(refresh_openapi)


class PredictFastPath:
    """POST /predict answered straight from ASGI, skipping Starlette's Request and FastAPI's routing.

    Measured: FastAPI's routing and Request/Response objects cost ~0.35 ms per call, several times
    the prediction itself; the FastAPI route above is only its OpenAPI description. Keys are checked before this (KeyMiddleware wraps it).
    """

    def __init__(self, app, holder: ModelHolder):
        self.app = app
        self.holder = holder

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/predict" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        served = self.holder.current  # one read: this request uses this version throughout
        limit = served.rules.max_body_bytes
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                status, content = 413, json.dumps({"detail": [{"loc": ["body"], "type": "too_long",
                                                               "msg": f"the body is larger than {limit} bytes: split the batch"}]}).encode()
                break
            chunks.append(chunk)
            more = message.get("more_body", False)
        else:
            body = b"".join(chunks)
            if len(body) <= INLINE_BODY_BYTES:
                status, content = answer(served, body)
            else:
                status, content = await anyio.to_thread.run_sync(answer, served, body)
        await send({"type": "http.response.start", "status": status, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()),
            (b"x-model-version", served.version.encode()), (b"x-data-snapshot", (served.data_snapshot or "").encode())]})
        await send({"type": "http.response.body", "body": content})


def add_health_route(app: FastAPI, holder: ModelHolder) -> None:
    @app.get("/health", summary="Is the newest model version served? ok, or degraded with the problem (public)",
             responses={503: {"description": "no model is being served"}})
    async def health():
        # 200 while predictions are answered, even degraded (an older version serves): a load balancer
        # should keep routing here; monitoring reads "status". /ping stays vetiver's plain "pong".
        report = holder.health()
        return JSONResponse(report, status_code=200 if report["model_version"] else 503)


def add_admin_routes(app: FastAPI, holder: ModelHolder) -> None:
    @app.get(f"{ADMIN_PREFIX}/status", summary="Served version, pin, last check and last load error (admin)")
    async def admin_status():
        return holder.status()

    @app.post(f"{ADMIN_PREFIX}/reload", summary="Look for a new version now and swap it in (admin)",
              responses={409: {"description": "the target version failed to load; the old one still serves"}})
    async def admin_reload():
        status = await anyio.to_thread.run_sync(lambda: holder.refresh(force=True))
        return JSONResponse(status, status_code=409 if status["outcome"] == "failed" else 200)

    @app.put(f"{ADMIN_PREFIX}/version", summary="Pin the API to one version (admin)",
             responses={409: {"description": "that version failed to load; the old one still serves"}})
    async def admin_pin(pin: PinRequest):
        try:
            status = await anyio.to_thread.run_sync(holder.pin, pin.version)
        except ModelLoadError as exc:
            return JSONResponse({"detail": str(exc), **holder.status("failed")}, status_code=409)
        return status

    @app.delete(f"{ADMIN_PREFIX}/version", summary="Unpin: follow the newest version again (admin)")
    async def admin_unpin():
        status = await anyio.to_thread.run_sync(holder.unpin)
        return JSONResponse(status, status_code=409 if status["outcome"] == "failed" else 200)


async def poll_forever(holder: ModelHolder, seconds: float) -> None:
    while True:
        await asyncio.sleep(seconds)
        try:
            await anyio.to_thread.run_sync(holder.refresh)
        except Exception:  # never let the poller die: log and try again next time
            log.exception("model poll failed")


def create_app(settings: Settings | None = None, board=None) -> FastAPI:
    settings = settings or load_settings()
    keys = KeyRing.load(settings.api_keys, settings.api_keys_file)
    board = board if board is not None else boards.board_from_url(settings.board_url, settings.aws_endpoint_url)
    holder = ModelHolder(board, max_batch=settings.api_max_batch, pinned=settings.model_version)
    status = holder.refresh(force=True)
    if holder.current is None:
        reason = (status.get("last_error") or {}).get("reason", "unknown")
        raise RuntimeError(f"nothing to serve from board {settings.board_url}: {reason} (run `make run` first?)")

    @contextlib.asynccontextmanager
    async def lifespan(app):
        log.info("board %s; %s", settings.board_url, keys.describe())
        log.info("serving %s version %s%s; batch limit %d records; %s", holder.name, holder.current.version,
                 " (pinned)" if holder.pinned else "", settings.api_max_batch,
                 f"polling for new versions every {settings.model_poll_seconds:g} s"
                 if settings.model_poll_seconds > 0 else "not polling (POST /admin/reload to update)")
        task = asyncio.create_task(poll_forever(holder, settings.model_poll_seconds)) if settings.model_poll_seconds > 0 else None
        try:
            yield
        finally:
            if task:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def factory():
        return FastAPI(lifespan=lifespan, title=f"{boards.MODEL_PIN} model API")

    api = PenguinAPI(holder, app_factory=factory)
    app = api.app
    add_predict_route(app, holder)
    add_health_route(app, holder)
    add_admin_routes(app, holder)
    add_offline_docs(app)  # /docs, /redoc and vetiver's root page without a CDN
    # vetiver answers validation errors as plain text; JSON with locations reads better and parses.
    app.add_exception_handler(RequestValidationError, request_validation_exception_handler)
    app.state.holder = holder
    app.state.keys = keys
    app.state.vetiver_api = api
    app.add_middleware(PredictFastPath, holder=holder)
    if not keys.open:
        app.add_middleware(KeyMiddleware, keys=keys)  # added last = outermost: keys before predictions
    return app
