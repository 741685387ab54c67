"""What the API answers, as its OpenAPI document declares it: each body's schema and every refusal
an operation can give. Clients generate code from that document, so a status missing here is a
status their code cannot handle; schemathesis checks every answer against it
(penguin_pipeline_tests/api/test_contract.py).
"""

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class FieldProblem(BaseModel):
    """One problem with the input, in FastAPI's own shape: where, what, and which kind."""

    model_config = ConfigDict(extra="allow")  # e.g. `input`, `ctx`: what was sent, the limit
    loc: list[str | int] = Field(description='where: ["body", row, field] or ["query", name]')
    msg: str
    type: str


class Problem(BaseModel):
    """Every refusal's body: `detail` says what was wrong, as text or one entry per problem."""

    detail: str | list[FieldProblem]


class Ping(BaseModel):
    ping: str


class Health(BaseModel):
    status: Literal["ok", "degraded"]
    model_version: str | None = Field(description="the served version; null before any loaded")
    problem: str | None = Field(description="what is degraded (names versions, never storage)")


class LoadError(BaseModel):
    version: str | None = Field(description="the version that failed; null: the listing did")
    reason: str = Field(description="the full error, naming the store")
    summary: str = Field(description="what /health says of it")
    at: float = Field(description="when (Unix time)")


class Status(Health):
    outcome: str | None = Field(
        description="what the call did: swapped, unchanged, pinned, failed, skipped: ..."
    )
    pinned_version: str | None
    last_check: float | None = Field(description="when the board was last looked at (Unix time)")
    last_error: LoadError | None


WHY = {
    400: "the body could not be read (e.g. bytes that are not UTF-8)",
    401: "no API key, or one that is not valid (only when keys are configured)",
    403: "the API key does not have the operation's scope (only when keys are configured)",
    404: "no such version on the board",
    409: "the version failed to load (or the board could not be listed); the old one still serves",
    413: "more records than the batch limit, or a body too large",
    422: "the input cannot be used: `detail` lists each problem and where",
    503: "the board's store did not answer",
}
UNAUTHORIZED_HEADERS = {"WWW-Authenticate": {"schema": {"type": "string"}}}


def refusals(*codes: int, body: type[BaseModel] = Problem) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries for these statuses, with their meaning and body schema."""
    answers: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        answers[code] = {"model": body, "description": WHY[code]}
        if code == 401:
            answers[code]["headers"] = UNAUTHORIZED_HEADERS
    return answers


# The status of an operator's action: 200 done (or nothing to do), 409 it failed.
STATUS_ANSWERS = {200: {"model": Status}, **refusals(409, body=Status)}
SECURED = refusals(401, 403)  # every operation behind a key
