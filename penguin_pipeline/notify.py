"""Alerts to a chat webhook: a JSON POST `{"text": ...}`, the shape Slack's incoming webhooks take
(Mattermost, Rocket.Chat and most chat tools take it too). The sensors that decide when to alert
are in defs/alerts.py; this module only words the alerts and delivers them.

Delivery never raises: a webhook that does not answer or answers 5xx is retried a few times with
a growing pause, then the failure is returned for the caller to log. The URL is a secret (it is
the credential), so nothing here ever shows more of it than scheme and host.
"""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from urllib.parse import urlsplit

ATTEMPTS = 3
TIMEOUT_SECONDS = 5.0
FIRST_PAUSE_SECONDS = 1.0  # doubled after each failed attempt: 1 s, 2 s


@dataclass(frozen=True)
class Delivery:
    delivered: bool
    attempts: int
    problem: str | None = None  # the last failure, with the URL masked


def masked(url: str) -> str:
    """Scheme and host only: Slack's path *is* the secret."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname or '?'}/…" if parts.scheme else "(not a URL)"


def send(
    url: str,
    text: str,
    attempts: int = ATTEMPTS,
    timeout: float = TIMEOUT_SECONDS,
    first_pause: float = FIRST_PAUSE_SECONDS,
    sleep=time.sleep,
) -> Delivery:
    """POST {"text": text} to `url`; retried on no answer, a timeout or a 5xx, not on a 4xx (the
    webhook refused this alert: sending it again would be refused again)."""
    body = json.dumps({"text": text}).encode()
    problem, pause = None, first_pause
    for attempt in range(1, attempts + 1):
        problem, retry = _post(url, body, timeout)
        if problem is None:
            return Delivery(True, attempt)
        if not retry or attempt == attempts:
            return Delivery(False, attempt, problem)
        sleep(pause)
        pause *= 2
    return Delivery(False, attempts, problem)


def _post(url: str, body: bytes, timeout: float) -> tuple[str | None, bool]:
    """(None, _) when delivered; else (what went wrong, whether to try again)."""
    request = urllib.request.Request(
        url, data=body, headers={"Content-Type": "application/json"}, method="POST"
    )
    where = masked(url)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:
            answer.read()
        return None, False
    except urllib.error.HTTPError as exc:
        return f"{where} answered HTTP {exc.code}", exc.code >= 500 or exc.code == 429
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        return f"{where} did not answer: {type(reason).__name__}", True
    except ValueError:  # not an http(s) URL at all: configuration, not a passing failure
        return f"PENGUIN_ALERT_WEBHOOK is not an http(s) URL ({where})", False


def first_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[0] if lines else "(no message)"


def run_failed_text(
    run_id: str, job: str, step: str | None, error: str | None, webserver_url: str | None
) -> str:
    where = f"step `{step}`" if step else "before any step ran"
    text = f":red_circle: penguin_pipeline run `{run_id}` of `{job}` failed at {where}: "
    text += first_line(error)
    if webserver_url:
        text += f"\n{webserver_url.rstrip('/')}/runs/{run_id}"
    return text


def quarantine_text(file: str, problem: str, moved_to: str | None) -> str:
    place = f" (moved to {moved_to})" if moved_to else ""
    return f":warning: landing file `{file}` moved to quarantine{place}: {first_line(problem)}"


def champion_kept_text(champion: str, challenger: str, reason: str) -> str:
    return (
        f":no_entry: challenger `{challenger}` not promoted; champion `{champion}` still "
        f"serves. {reason}"
    )
