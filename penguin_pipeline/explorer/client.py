"""The explorer's whole conversation with the prediction API, as plain functions (no Shiny here).

Everything the page shows comes through this client: the served version's inputs (/inputs), each
prediction (/predict), the lookup table (/summary), and for an admin key a reload. Every failure
becomes an ApiProblem whose sentence is what the page says, never a traceback.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import httpx

# The book's lab labels; a field a future model adds is shown by its name.
LABELS = {"species": "Species", "sex": "Sex", "bill_length_mm": "Bill length (mm)"}
TIMEOUT_SECONDS = 5.0  # a hung API is reported after this, not waited on forever


def label(name: str) -> str:
    return LABELS.get(name, name.replace("_", " ").capitalize())


class ApiProblem(Exception):
    """What went wrong, as the sentence the page shows; `fields` maps a refused field to why."""

    def __init__(self, sentence: str, fields: dict[str, str] | None = None):
        super().__init__(sentence)
        self.sentence = sentence
        self.fields = fields or {}


@dataclass(frozen=True)
class InputField:
    name: str
    categories: tuple[str, ...] | None = None  # a categorical field's allowed values
    low: float | None = None  # a measurement's inclusive accepted range
    high: float | None = None

    @property
    def label(self) -> str:
        return label(self.name)


@dataclass(frozen=True)
class ServedInputs:
    model_version: str
    data_snapshot: str | None
    champion_version: str | None
    is_champion: bool
    fields: tuple[InputField, ...]
    example: dict = field(hash=False, compare=False)

    @classmethod
    def from_answer(cls, answer: dict) -> ServedInputs:
        fields = tuple(
            InputField(f["name"], tuple(f["categories"]))
            if "categories" in f
            else InputField(f["name"], low=float(f["min"]), high=float(f["max"]))
            for f in answer["fields"]
        )
        return cls(
            answer["model_version"],
            answer.get("data_snapshot"),
            answer.get("champion_version"),
            bool(answer.get("is_champion")),
            fields,
            dict(answer.get("example") or {}),
        )


@dataclass(frozen=True)
class Prediction:
    grams: float
    model_version: str
    data_snapshot: str | None


class ApiClient:
    """One API, one key; `http` may be any httpx.Client (in tests, an in-process TestClient)."""

    def __init__(
        self,
        url: str,
        key: str | None = None,
        http: httpx.Client | None = None,
        timeout: float = TIMEOUT_SECONDS,
    ):
        self.url = url.rstrip("/")
        self.has_key = bool(key)
        self.timeout = timeout
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self.http = http or httpx.Client(base_url=self.url, timeout=timeout)
        self.http.headers.update(headers)

    def inputs(self) -> ServedInputs:
        return ServedInputs.from_answer(self._call("GET", "/inputs"))

    def predict(self, record: dict) -> Prediction:
        answer = self._call("POST", "/predict", json=record)
        return Prediction(answer["predict"][0], answer["model_version"], answer["data_snapshot"])

    def summary(self) -> list[dict]:
        return self._call("GET", "/summary")["rows"]

    def is_admin(self) -> bool:
        """Whether this explorer was started with a key that has the admin scope. Without a key
        never, even on an open API: admin actions need an explicit admin key."""
        if not self.has_key:
            return False
        try:
            self._call("GET", "/admin/status")
        except ApiProblem:
            return False
        return True

    def reload(self) -> dict:
        """POST /admin/reload: the API looks for a new version now; its status after."""
        return self._call("POST", "/admin/reload", accept=(200, 409))

    def _call(self, method: str, path: str, json=None, accept=(200,)) -> dict:
        try:
            response = self.http.request(method, path, json=json)
        except httpx.TransportError as exc:  # refused, reset, timed out, name not found
            raise ApiProblem(
                f"The prediction API at {self.url} does not answer ({self._why(exc)}). "
                "The explorer asks again at your next change."
            ) from None
        if response.status_code not in accept:
            raise refusal(self.url, response.status_code, _body(response), self.has_key)
        return _body(response)

    def _why(self, exc: httpx.TransportError) -> str:
        if isinstance(exc, httpx.TimeoutException):
            return f"no answer within {self.timeout:g} s"
        if isinstance(exc, httpx.ConnectError):
            return "connection refused" if "refused" in str(exc).lower() else "cannot connect"
        return type(exc).__name__


def _body(response: httpx.Response):
    try:
        return response.json()
    except ValueError:  # another server on that port, a proxy's HTML error page
        return {"detail": response.text[:200] or response.reason_phrase}


def refusal(url: str, status: int, body, has_key: bool) -> ApiProblem:
    """The sentence for an answer that is not a result."""
    detail = body.get("detail") if isinstance(body, dict) else body
    if status == 422 and isinstance(detail, list):
        fields = field_problems(detail)
        listed = "; ".join(f"{label(name)}: {why}" for name, why in fields.items())
        return ApiProblem(f"The API cannot predict this input. {listed}.", fields)
    if status == 401:
        if not has_key:
            return ApiProblem(
                f"The prediction API at {url} requires a key and the explorer has none: "
                "start it with PENGUIN_API_KEY set to a key with the predict scope."
            )
        return ApiProblem(
            f"The prediction API at {url} refused the explorer's key ({detail}): "
            "start it with PENGUIN_API_KEY set to a key the API knows."
        )
    if status == 403:
        return ApiProblem(f"The explorer's key is not allowed to do this: {detail}.")
    return ApiProblem(f"The prediction API at {url} answered {status}: {detail}.")


def field_problems(detail: list[dict]) -> dict[str, str]:
    """FastAPI's 422 detail by field: the message, and the value the API was given."""
    problems: dict[str, str] = {}
    for error in detail:
        names = [part for part in error.get("loc", []) if isinstance(part, str) and part != "body"]
        name = names[-1] if names else "input"
        why = str(error.get("msg", "refused"))
        if "input" in error and error["input"] is not None:
            why += f" (got {error['input']!r})"
        problems.setdefault(name, why)
    return problems
