"""The prediction API: a FastAPI app of three routers, public, model (scope predict) and admin
(keys.py: who may call which; registry.py: which version serves; the model is processing's).

POST /predict reads its body itself, not as a pydantic body parameter: vetiver's client posts JSON
without a JSON content type (vetiver-python issue 241); the inputs follow the served version; and
the served spec decodes and validates a body in one msgspec pass, several times faster.
"""

import contextlib
import logging
from typing import Annotated, Any, Literal

import anyio
import orjson
from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request, Security
from fastapi.responses import (
    HTMLResponse,
    JSONResponse,
    RedirectResponse,
    Response,
)
from fastapi.security import SecurityScopes
from fastapi_offline import FastAPIOffline
from opentelemetry import trace
from pydantic import BaseModel, Field

from penguin_pipeline.processing.features import InputError
from penguin_pipeline.processing.model_card import model_card
from penguin_pipeline.report.card import card_page
from penguin_pipeline.settings import Settings, load_settings
from penguin_pipeline.storage import boards
from penguin_pipeline.storage.s3 import S3StorageError

from .contract import SECURED, STATUS_ANSWERS, Health, Ping, Status, refusals
from .keys import PUBLIC, KeyRing
from .metrics import EXPOSITION_TYPES, ApiMetrics, Instrumented
from .registry import NO_SUCH_VERSION, ModelHolder, SummaryHolder

log = logging.getLogger("penguin_pipeline.api")
BYTES_PER_RECORD = 512  # room per record for field names, spaces and extra fields sent along
PREDICT_SCOPE = SecurityScopes(["predict"])  # what /predict asks of a key (it checks it itself)

public = APIRouter(tags=["public"])
# Every route behind a key may be refused 401 or 403.
model = APIRouter(tags=["model"], responses=SECURED)
admin = APIRouter(prefix="/admin", tags=["admin"], responses=SECURED)
operations = APIRouter(tags=["operations"], responses=SECURED)  # scope admin: what is monitored


class Predictions(BaseModel):
    predict: list[float] = Field(description="one prediction per record, in order (g)")
    model_version: str
    data_snapshot: str | None


@public.get("/ping", openapi_extra=PUBLIC, response_model=Ping)
async def ping():
    """Is the API up? vetiver's shape."""
    return {"ping": "pong"}


@public.get("/health", openapi_extra=PUBLIC, response_model=Health)
async def health(request: Request):
    """Is the champion (or the pinned version) served? "ok", or "degraded" with the problem;
    always 200, as a version always answers (an older one, when degraded): read "status"."""
    return request.app.state.holder.health()


@public.get("/", include_in_schema=False, openapi_extra=PUBLIC)
@public.get("/__docs__", include_in_schema=False, openapi_extra=PUBLIC)  # vetiver's docs page
async def docs_page():
    return RedirectResponse("docs")


async def bounded_body(request: Request, most: int) -> bytes:
    """The body, refused (413, JSON like every refusal) beyond `most` bytes: by its Content-Length
    before a byte is read, else as it streams. FastAPI's own `max_body_size` answers a body over
    the limit in plain text, which the OpenAPI document could not describe as a Problem.

    The ASGI messages are read as they come (`request.receive`), not through `request.stream()`:
    its async generator cost a served request ~3 us of its ~130 (one row; ~6 us for 1000 rows)."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > most:
        raise too_large(request, most)
    chunks, size, more = [], 0, True
    while more:
        message = await request.receive()
        if message["type"] == "http.disconnect":  # counted as a refusal, not logged as an error
            request.state.refusal = "client_disconnected"
            raise HTTPException(400, "the client went away before its body was complete")
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > most:
            raise too_large(request, most)
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def too_large(request: Request, most: int) -> HTTPException:
    request.state.refusal = "body_too_large"
    return HTTPException(413, f"the body is larger than the limit of {most} bytes")


async def predict(request: Request):
    """Body mass (g) for one record or a list of records."""
    state = request.app.state
    await state.keys(request, PREDICT_SCOPE)
    served = state.holder.current
    body = await bounded_body(request, state.max_body)
    try:
        parsed = served.predictor.spec.parse(body, state.max_batch)
    except InputError as exc:
        request.state.refusal = "too_many_records" if exc.too_many else "invalid_input"
        raise HTTPException(413 if exc.too_many else 422, exc.errors) from None
    state.metrics.predicted += len(parsed.records)
    predictions = served.predictor.predict_matrix(parsed.matrix)
    answer = {"predict": predictions, "model_version": served.version}
    answer["data_snapshot"] = served.data_snapshot
    headers = {"X-Model-Version": served.version, "X-Data-Snapshot": served.data_snapshot or ""}
    # orjson writes the numpy array as a list of floats, the same digits as the floats' own
    content = orjson.dumps(answer, option=orjson.OPT_SERIALIZE_NUMPY)
    return Response(content, media_type="application/json", headers=headers)


@model.get("/metadata", response_model=dict[str, Any])
async def metadata(request: Request):
    """The served version's metadata, vetiver's shape."""
    return request.app.state.holder.current.vetiver.metadata.to_dict()


@model.get("/prototype", response_model=dict[str, Any])
async def prototype(request: Request):
    """The served version's input prototype (JSON schema), vetiver's shape."""
    schema = request.app.state.holder.current.vetiver.prototype.model_json_schema()
    for field in schema["properties"].values():
        field.pop("title", None)
    return schema


class CardQuery(BaseModel):
    # An unknown parameter (a typo such as `?verison=`) is a 422 naming it, not silently ignored.
    model_config = {"extra": "forbid"}
    version: str | None = Field(None, max_length=200, description="default: the served one")
    format: Literal["json", "html"] = "json"


class Inputs(BaseModel):
    model_version: str
    data_snapshot: str | None
    champion_version: str | None = Field(description="the version served by default")
    is_champion: bool = Field(description="whether the answering version is the champion")
    fields: list[dict] = Field(
        description="in encoding order: {name, categories} or {name, min, max} (inclusive)"
    )
    example: dict = Field(description="a typical penguin of the training data")


@model.get("/inputs", response_model=Inputs, responses=refusals(503))
def inputs(request: Request):
    """What the served version accepts (each field's categories or accepted range), with the
    version and whether it is the champion: all a form needs to ask for a prediction."""
    holder = request.app.state.holder
    served = holder.current
    champion = holder.champion_version()
    return {
        "model_version": served.version,
        "data_snapshot": served.data_snapshot,
        "champion_version": champion,
        "is_champion": champion == served.version,
        **served.predictor.spec.to_metadata(),
    }


class SummaryTable(BaseModel):
    version: str = Field(description=f"the {boards.SUMMARY_PIN} pin version")
    rows: list[dict] = Field(
        description="per species and sex: n_penguins, and n_, mean_, sd_ of each measure"
    )


@model.get(
    "/summary",
    response_model=SummaryTable,
    responses=refusals(404, 503),
)
def summary_table(request: Request):
    """The pre-calculated penguin_summary lookup table at species x sex grain, from its pin:
    what an app draws a prediction among, without ever scanning rows."""
    table = request.app.state.summaries.current()
    if table is None:
        raise HTTPException(404, f"no {boards.SUMMARY_PIN} pin on the board yet (make run)")
    return {"version": table[0], "rows": table[1]}


async def storage_unreachable(request: Request, exc: S3StorageError) -> JSONResponse:
    """Any route that reads the board while its store does not answer: 503, naming the store."""
    return JSONResponse({"detail": f"the board could not be read: {exc}"}, status_code=503)


@model.get(
    "/model-card",
    responses={
        200: {
            "content": {
                "application/json": {"schema": {"type": "object"}},
                "text/html": {"schema": {"type": "string"}},
            },
            "description": "the card (JSON, or HTML: format=html)",
        },
        **refusals(404, 503),
    },
)
def model_card_route(request: Request, query: Annotated[CardQuery, Query()]):
    """The model card of the served version (or `version`): vetiver's sections, from its pin."""
    holder = request.app.state.holder
    board, version = holder.board, query.version or holder.current.version
    if not boards.has_version(board, boards.MODEL_PIN, version):
        request.state.refusal = "no_such_version"
        raise HTTPException(404, f"{NO_SUCH_VERSION}: {boards.MODEL_PIN} has no {version!r}")
    try:
        facts = boards.model_facts(board, version)
    except S3StorageError:
        raise  # the store did not answer: says nothing about this version (503, above)
    except Exception as exc:  # no such version, or its data.txt unreadable
        raise HTTPException(404, f"no readable {boards.MODEL_PIN} version {version!r}") from exc
    card = model_card(facts, boards.read_season_metrics(board), boards.latest_decision(board))
    return HTMLResponse(card_page(card)) if query.format == "html" else JSONResponse(card)


@admin.get("/status", response_model=Status)
async def admin_status(request: Request):
    """Served version, pin, last check and last load error."""
    return request.app.state.holder.status()


def _outcome(status: dict) -> JSONResponse:
    return JSONResponse(status, status_code=409 if status["outcome"] == "failed" else 200)


@admin.post("/reload", response_model=None, responses=STATUS_ANSWERS)
def admin_reload(request: Request):
    """Look for a new version now and swap it in."""
    return _outcome(request.app.state.holder.refresh(force=True))


@admin.put("/version", response_model=None, responses={**STATUS_ANSWERS, **refusals(400, 404, 503)})
def admin_pin(request: Request, version: str = Body(embed=True, min_length=1, max_length=200)):
    """Pin the API to one version (404 when the board has no such version)."""
    status = request.app.state.holder.pin(version)
    if status["outcome"] == NO_SUCH_VERSION:
        request.state.refusal = "no_such_version"
        raise HTTPException(404, f"{NO_SUCH_VERSION}: {boards.MODEL_PIN} has no {version!r}")
    return _outcome(status)


@admin.delete("/version", response_model=None, responses=STATUS_ANSWERS)
def admin_unpin(request: Request):
    """Unpin: follow the newest version again."""
    return _outcome(request.app.state.holder.unpin())


@operations.get(
    "/metrics",
    response_class=Response,  # not JSON; and its refusals stay JSON in the document
    responses={200: {"content": dict.fromkeys(EXPOSITION_TYPES, {"schema": {"type": "string"}})}},
)
async def metrics(request: Request):
    """Prometheus metrics: requests and latency by route and status, predictions (rows), refusals
    by reason, the served version and its data snapshot, seconds since the last model refresh.
    Prometheus' text format, or OpenMetrics when the scraper's Accept header asks for it."""
    body, media_type = request.app.state.metrics.exposition(request.headers.get("accept"))
    return Response(body, media_type=media_type)


def openapi(app: FastAPI) -> dict:
    """FastAPI's document, made again for each served version: its inputs may differ. The
    request body of /predict is that version's pydantic model (FastAPI's "Extending OpenAPI")."""
    served, limit = app.state.holder.current, app.state.max_batch
    if app.version != served.version:
        spec, app.version, app.openapi_schema = served.predictor.spec, served.version, None
        app.description = (
            f"{served.vetiver.description}. Serving version {served.version} (data "
            f"snapshot {served.data_snapshot}). Batch limit: {limit} records."
        )
        record = spec.record_model.model_json_schema()
        batch = {"type": "array", "items": record, "minItems": 1, "maxItems": limit}
        body = {"schema": {"anyOf": [record, batch]}, "example": spec.example}
        operation = FastAPI.openapi(app)["paths"]["/predict"]["post"]
        operation["requestBody"] = {"required": True, "content": {"application/json": body}}
    return app.openapi_schema


async def poll_forever(holder: ModelHolder, seconds: float) -> None:
    while seconds > 0:  # 0: only POST /admin/reload
        await anyio.sleep(seconds)
        try:
            await anyio.to_thread.run_sync(holder.refresh)
        except Exception:  # never let the poller die: log and try again next time
            log.exception("model poll failed")


def telemetry() -> dict:
    """FastAPI's own OpenTelemetry: traces and logs when this process has a tracer provider as the
    app is made (`opentelemetry-instrument`, or a deployment's own set-up), else none. Asking for
    an unset provider on every request cost ~2 us of a prediction's ~45; the API's metrics are
    Prometheus' (GET /metrics), so FastAPI's OpenTelemetry metrics are always off."""
    configured = not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)
    return {"tracing": configured, "logs": configured, "metrics": False}


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or load_settings()
    keys = KeyRing(settings.api_keys, settings.api_keys_file)
    board = boards.board_from_url(settings.board_url, settings.aws_endpoint_url)
    holder = ModelHolder(board, pinned=settings.model_version)
    if holder.refresh(force=True)["outcome"] == "failed":
        reason = holder.last_error["reason"]
        raise RuntimeError(f"nothing to serve from {settings.board_url}: {reason} (make run?)")
    poll, limit = settings.model_poll_seconds, settings.api_max_batch

    @contextlib.asynccontextmanager
    async def lifespan(app):
        polling = f"every {poll:g} s" if poll > 0 else "never (POST /admin/reload to update)"
        log.info(
            f"board {settings.board_url}; {keys.describe()}; batch limit {limit} records; "
            f"looking for new versions {polling}"
        )
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(poll_forever, holder, poll)
            yield
            tasks.cancel_scope.cancel()

    # Swagger UI and ReDoc from the fastapi-offline package's files: they render with no internet.
    app = FastAPIOffline(
        title=f"{boards.MODEL_PIN} model API",
        lifespan=lifespan,
        static_url="/docs-static",
        swagger_ui_parameters={"validatorUrl": None},
        telemetry=telemetry(),
    )
    app.state.holder, app.state.max_batch = holder, limit
    # a larger body is refused (413) before it is parsed
    app.state.max_body = limit * BYTES_PER_RECORD + 65_536
    app.state.summaries = SummaryHolder(board)
    # /predict first (routes are matched in order; also before the docs' routes, ~1 us) and on
    # the app's own router, checking its key itself: an included router and a route dependency
    # cost FastAPI 0.165 ~17 us of the ~60 us a prediction took in the app (py-spy under wrk;
    # docs/benchmarks/api.md). Same document.
    app.state.keys = keys
    app.add_api_route(
        "/predict",
        predict,
        methods=["POST"],
        response_model=Predictions,
        responses={**SECURED, **refusals(413, 422)},
        tags=["model"],
        openapi_extra=keys.requirement(PREDICT_SCOPE),
    )
    app.router.routes.insert(0, app.router.routes.pop())
    app.include_router(model, dependencies=[Security(keys, scopes=PREDICT_SCOPE.scopes)])
    app.include_router(public)
    app.include_router(admin, dependencies=[Security(keys, scopes=["admin"])])
    app.include_router(operations, dependencies=[Security(keys, scopes=["admin"])])
    app.state.metrics = ApiMetrics(holder)
    app.add_middleware(Instrumented, metrics=app.state.metrics)
    app.add_exception_handler(S3StorageError, storage_unreachable)
    app.openapi = lambda: openapi(app)
    return app
