"""Alerts: delivery to a real HTTP receiver on 127.0.0.1 (retries on 5xx and timeouts with a
growing pause, no retry on 4xx, the URL never shown), and the three sensors ticked on an
ephemeral instance: a failed run, a quarantined landing file, a champion kept."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from penguin_pipeline import notify
from penguin_pipeline.defs.alerts import (
    AlertWebhook,
    alert_webhook,
    champion_alert_sensor,
    quarantine_alert_sensor,
    run_failure_alert_sensor,
)
from penguin_pipeline.defs.assets import QUARANTINED
from penguin_pipeline.settings import load_settings

SECRET_PATH = "/services/T000/B000/s3cr3t-token"


class Receiver:
    """A webhook on a free port: answers each POST with the next of `statuses` (then 200),
    after `delays` seconds for the first requests; keeps every body and when it came."""

    def __init__(self, statuses=(), delays=()):
        self.statuses, self.delays = list(statuses), list(delays)
        self.bodies, self.times = [], []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.bodies.append(json.loads(body))
                receiver.times.append(time.monotonic())
                if receiver.delays:
                    time.sleep(receiver.delays.pop(0))
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args):  # quiet
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}{SECRET_PATH}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver():
    made = []

    def make(statuses=(), delays=()):
        made.append(Receiver(statuses, delays))
        return made[-1]

    yield make
    for r in made:
        r.stop()


def test_5xx_is_retried_with_a_growing_pause_until_delivered(receiver):
    hook = receiver(statuses=[503, 500])
    pauses = []
    delivery = notify.send(hook.url, "hello", attempts=3, first_pause=0.5, sleep=pauses.append)
    assert delivery == notify.Delivery(True, 3)
    assert hook.texts == ["hello"] * 3 and pauses == [0.5, 1.0]


def test_a_webhook_that_keeps_failing_is_given_up_and_the_url_is_never_shown(receiver):
    hook = receiver(statuses=[502] * 5)
    delivery = notify.send(hook.url, "x", attempts=3, first_pause=0.01)
    assert not delivery.delivered and delivery.attempts == 3 and len(hook.bodies) == 3
    assert "HTTP 502" in delivery.problem and "127.0.0.1" in delivery.problem
    assert "s3cr3t" not in delivery.problem and "services" not in delivery.problem


def test_a_timeout_is_retried_and_a_4xx_is_not(receiver):
    slow = receiver(delays=[1.5])
    started = time.monotonic()
    delivery = notify.send(slow.url, "late", attempts=3, timeout=0.3, first_pause=0.01)
    assert delivery == notify.Delivery(True, 2) and time.monotonic() - started < 1.4
    refused = receiver(statuses=[404, 404])
    delivery = notify.send(refused.url, "gone", attempts=3, first_pause=0.01)
    assert delivery.attempts == 1 and len(refused.bodies) == 1 and "HTTP 404" in delivery.problem


def test_nothing_answering_is_retried_then_reported(receiver):
    hook = receiver()
    url = hook.url
    hook.stop()  # the port now refuses connections
    delivery = notify.send(url, "x", attempts=2, timeout=1, first_pause=0.01)
    assert (
        not delivery.delivered and delivery.attempts == 2 and "did not answer" in delivery.problem
    )


def test_the_webhook_is_a_secret_env_var_and_unset_means_no_alerts(receiver, monkeypatch):
    hook = receiver()
    configured = alert_webhook(load_settings({"PENGUIN_ALERT_WEBHOOK": hook.url}))
    assert isinstance(configured.url, dg.EnvVar) and "s3cr3t" not in repr(configured)
    monkeypatch.setenv("PENGUIN_ALERT_WEBHOOK", hook.url)  # where Dagster resolves it from
    assert configured.alert("resolved", dg.get_dagster_logger()).delivered
    assert hook.texts == ["resolved"]
    unset = alert_webhook(load_settings({}))
    assert unset.url is None and unset.alert("nowhere", dg.get_dagster_logger()) is None


@dg.asset
def upstream_ok():
    return 1


@dg.asset(deps=[upstream_ok])
def breaks():
    raise ValueError("bill_length_mm is -3 on line 7\nsecond line of detail")


def test_a_failed_run_is_posted_with_job_step_error_and_link(receiver):
    hook = receiver()
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([upstream_ok, breaks], instance=instance, raise_on_error=False)
    assert not result.success
    run = instance.get_run_by_id(result.run_id)
    failure = instance.get_records_for_run(
        result.run_id, of_type=dg.DagsterEventType.RUN_FAILURE
    ).records[0]
    webhook = AlertWebhook(url=hook.url, webserver_url="http://127.0.0.1:3000/")
    context = dg.build_run_status_sensor_context(
        sensor_name=run_failure_alert_sensor.name,
        dagster_event=failure.event_log_entry.dagster_event,
        dagster_instance=instance,
        dagster_run=run,
        resources={"alert_webhook": webhook},
    ).for_run_failure()
    run_failure_alert_sensor(context)
    (text,) = hook.texts
    assert result.run_id in text and run.job_name in text and "`breaks`" in text
    assert "failed at step `breaks`: ValueError: bill_length_mm is -3 on line 7\n" in text
    assert "second line" not in text and "Error occurred while executing" not in text
    assert text.endswith(f"http://127.0.0.1:3000/runs/{result.run_id}")


def tick(sensor, instance, cursor, url):
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"alert_webhook": AlertWebhook(url=url)}
    )
    sensor(context)
    return context.cursor


def record(instance, asset: str, metadata: dict) -> None:
    """A materialization of `asset` in the event log, with the metadata the asset records."""
    instance.report_runless_asset_event(dg.AssetMaterialization(asset, metadata=metadata))


def test_each_quarantined_file_is_posted_once_and_history_is_not(receiver):
    hook, instance = receiver(), dg.DagsterInstance.ephemeral()
    moved = {"file": "old.csv", "problem": "not UTF-8", "moved_to": "quarantine/old.csv"}
    record(instance, "raw_penguins", {QUARANTINED: dg.MetadataValue.json([moved])})
    cursor = tick(quarantine_alert_sensor, instance, None, hook.url)  # first tick: from now on
    assert hook.texts == [] and cursor
    files = [
        {"file": "a.csv", "problem": "header is not LTER's\nline 2", "moved_to": "q/a.csv"},
        {"file": "b.csv", "problem": "empty file", "moved_to": "q/b.csv"},
    ]
    record(instance, "raw_penguins", {QUARANTINED: dg.MetadataValue.json(files)})
    record(instance, "raw_penguins", {QUARANTINED: dg.MetadataValue.json([])})
    cursor = tick(quarantine_alert_sensor, instance, cursor, hook.url)
    assert len(hook.texts) == 2
    assert "`a.csv`" in hook.texts[0] and "header is not LTER's" in hook.texts[0]
    assert "line 2" not in hook.texts[0] and "q/a.csv" in hook.texts[0]
    assert "`b.csv`" in hook.texts[1] and "empty file" in hook.texts[1]
    tick(quarantine_alert_sensor, instance, cursor, hook.url)
    assert len(hook.texts) == 2  # nothing new, nothing sent


def test_a_new_decision_keeping_the_champion_is_posted(receiver):
    hook, instance = receiver(), dg.DagsterInstance.ephemeral()
    cursor = tick(champion_alert_sensor, instance, None, hook.url)
    kept = "champion kept: input drift above the blocking threshold: bill_length_mm PSI 0.41"
    decisions = [
        {"promoted": False, "newly_decided": True, "reason": kept},
        {"promoted": False, "newly_decided": False, "reason": kept},  # the same decision again
        {"promoted": True, "newly_decided": True, "reason": "promoted: RMSE 300 g"},
    ]
    for decision in decisions:
        record(instance, "penguin_champion", {"champion": "v1", "challenger": "v2", **decision})
    tick(champion_alert_sensor, instance, cursor, hook.url)
    (text,) = hook.texts
    assert "`v2` not promoted" in text and "`v1` still serves" in text and "PSI 0.41" in text


def test_the_alert_sensors_are_in_the_projects_definitions():
    from penguin_pipeline.definitions import defs

    names = {s.name for s in defs().sensors}
    assert {"run_failure_alert_sensor", "quarantine_alert_sensor", "champion_alert_sensor"} <= names
    assert run_failure_alert_sensor.default_status == dg.DefaultSensorStatus.RUNNING
