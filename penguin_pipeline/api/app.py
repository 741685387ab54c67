"""The prediction API: a FastAPI app of three routers, public, model (scope predict) and admin
(keys.py: who may call which; registry.py: which version serves; the model is processing's).

POST /predict reads its body itself, not as a pydantic body parameter: vetiver's client posts JSON
without a JSON content type (vetiver-python issue 241); the inputs follow the served version; and
the served spec decodes and validates a body in one msgspec pass, several times faster.
"""

import contextlib
import logging
from typing import Literal

import anyio
import orjson
from fastapi import APIRouter, Body, FastAPI, HTTPException, Query, Request, Security
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi_offline import FastAPIOffline
from pydantic import BaseModel, Field

from penguin_pipeline.processing.features import InputError
from penguin_pipeline.processing.model_card import model_card
from penguin_pipeline.report.card import card_page
from penguin_pipeline.settings import Settings, load_settings
from penguin_pipeline.storage import boards
from penguin_pipeline.storage.s3 import S3StorageError

from .keys import PUBLIC, KeyRing
from .registry import ModelHolder, SummaryHolder

log = logging.getLogger("penguin_pipeline.api")
BYTES_PER_RECORD = 512  # room per record for field names, spaces and extra fields sent along

public = APIRouter(tags=["public"])
model = APIRouter(tags=["model"])
admin = APIRouter(prefix="/admin", tags=["admin"])


class Predictions(BaseModel):
    predict: list[float] = Field(description="one prediction per record, in order (g)")
    model_version: str
    data_snapshot: str | None


@public.get("/ping", openapi_extra=PUBLIC)
async def ping():
    """Is the API up? vetiver's shape."""
    return {"ping": "pong"}


@public.get("/health", openapi_extra=PUBLIC)
async def health(request: Request):
    """Is the champion (or the pinned version) served? "ok", or "degraded" with the problem;
    always 200, as a version always answers (an older one, when degraded): read "status"."""
    return request.app.state.holder.health()


@public.get("/", include_in_schema=False, openapi_extra=PUBLIC)
@public.get("/__docs__", include_in_schema=False, openapi_extra=PUBLIC)  # vetiver's docs page
async def docs_page():
    return RedirectResponse("docs")


REFUSED = {
    413: {"description": "more records than the batch limit, or a body too large"},
    422: {"description": "the input cannot be predicted: `detail` lists each problem and where"},
}


@model.post("/predict", response_model=Predictions, responses=REFUSED)
async def predict(request: Request):
    """Body mass (g) for one record or a list of records."""
    served, limit = request.app.state.holder.current, request.app.state.max_batch
    try:  # the body's size is bounded by the app's max_body_size
        records, _ = served.predictor.spec.parse(await request.body(), limit)
    except InputError as exc:
        raise HTTPException(413 if exc.too_many else 422, exc.errors) from None
    answer = {"predict": served.predictor.predict(records), "model_version": served.version}
    answer["data_snapshot"] = served.data_snapshot
    headers = {"X-Model-Version": served.version, "X-Data-Snapshot": served.data_snapshot or ""}
    return Response(orjson.dumps(answer), media_type="application/json", headers=headers)


@model.get("/metadata")
async def metadata(request: Request):
    """The served version's metadata, vetiver's shape."""
    return request.app.state.holder.current.vetiver.metadata.to_dict()


@model.get("/prototype")
async def prototype(request: Request):
    """The served version's input prototype (JSON schema), vetiver's shape."""
    schema = request.app.state.holder.current.vetiver.prototype.model_json_schema()
    for field in schema["properties"].values():
        field.pop("title", None)
    return schema


class Inputs(BaseModel):
    model_version: str
    data_snapshot: str | None
    champion_version: str | None = Field(description="the version served by default")
    is_champion: bool = Field(description="whether the answering version is the champion")
    fields: list[dict] = Field(
        description="in encoding order: {name, categories} or {name, min, max} (inclusive)"
    )
    example: dict = Field(description="a typical penguin of the training data")


@model.get("/inputs", response_model=Inputs, responses={503: {"description": "board down"}})
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
    responses={404: {"description": "not pinned yet"}, 503: {"description": "board down"}},
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
        200: {"content": {"text/html": {}}, "description": "the card (JSON, or HTML: format=html)"},
        404: {"description": "no such version on the board"},
        503: {"description": "the board's store did not answer"},
    },
)
def model_card_route(
    request: Request,
    version: str | None = Query(None, max_length=200, description="default: the served one"),
    format: Literal["json", "html"] = "json",
):
    """The model card of the served version (or `version`): vetiver's sections, from its pin."""
    holder = request.app.state.holder
    board, version = holder.board, version or holder.current.version
    try:
        facts = boards.model_facts(board, version)
    except S3StorageError:
        raise  # the store did not answer: says nothing about this version (503, above)
    except Exception as exc:  # no such version, or its data.txt unreadable
        raise HTTPException(404, f"no readable {boards.MODEL_PIN} version {version!r}") from exc
    card = model_card(facts, boards.read_season_metrics(board), boards.latest_decision(board))
    return HTMLResponse(card_page(card)) if format == "html" else JSONResponse(card)


@admin.get("/status")
async def admin_status(request: Request):
    """Served version, pin, last check and last load error."""
    return request.app.state.holder.status()


CONFLICT = {409: {"description": "the version failed to load; the old one still serves"}}


def _outcome(status: dict) -> JSONResponse:
    return JSONResponse(status, status_code=409 if status["outcome"] == "failed" else 200)


@admin.post("/reload", responses=CONFLICT)
def admin_reload(request: Request):
    """Look for a new version now and swap it in."""
    return _outcome(request.app.state.holder.refresh(force=True))


@admin.put("/version", responses=CONFLICT)
def admin_pin(request: Request, version: str = Body(embed=True, min_length=1, max_length=200)):
    """Pin the API to one version."""
    return _outcome(request.app.state.holder.pin(version))


@admin.delete("/version", responses=CONFLICT)
def admin_unpin(request: Request):
    """Unpin: follow the newest version again."""
    return _outcome(request.app.state.holder.unpin())


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
    )
    app.state.holder, app.state.max_batch = holder, limit
    app.state.summaries = SummaryHolder(board)
    # /predict's router first: routes are matched in order, and it is the one that must be fast.
    most = limit * BYTES_PER_RECORD + 65_536  # a larger body is refused (413) before it is parsed
    app.include_router(model, dependencies=[Security(keys, scopes=["predict"])], max_body_size=most)
    app.include_router(public)
    app.include_router(admin, dependencies=[Security(keys, scopes=["admin"])])
    app.add_exception_handler(S3StorageError, storage_unreachable)
    app.openapi = lambda: openapi(app)
    return app
