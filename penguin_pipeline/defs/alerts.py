"""Alerts, on Dagster's own mechanisms: a run-failure sensor, and sensors that read the event log
for what the assets recorded (a landing file quarantined by raw_penguins, a champion kept by
penguin_champion). They run in the daemon (`make dev`, the production profile), never inside a
run: a slow or dead webhook delays a sensor tick, never a step.

With PENGUIN_ALERT_WEBHOOK unset, nothing is sent (the sensors still tick, and say so). The URL
reaches the resource as dg.EnvVar: the UI and the stored config show the variable's name only.
"""

from __future__ import annotations

import dagster as dg

from .. import notify
from ..settings import Settings
from .assets import QUARANTINED

WEBHOOK_VARIABLE = "PENGUIN_ALERT_WEBHOOK"
TICK_SECONDS = 30
BATCH = 100  # materializations read per tick; more wait for the next tick (the cursor keeps them)


class AlertWebhook(dg.ConfigurableResource):
    """Where alerts go (a Slack-style incoming webhook), and the UI to link failed runs to."""

    url: str | None = None  # dg.EnvVar(PENGUIN_ALERT_WEBHOOK), or None: no alerts
    webserver_url: str | None = None  # DAGSTER_WEBSERVER_URL: links to runs when set

    def alert(self, text: str, log) -> notify.Delivery | None:
        """Send `text`; never raises. None when no webhook is configured."""
        url = self.url.get_value() if isinstance(self.url, dg.EnvVar) else self.url
        if not url:
            log.info("no PENGUIN_ALERT_WEBHOOK: alert not sent: %s", text)
            return None
        delivery = notify.send(url, text)
        if not delivery.delivered:
            log.error(
                "alert not delivered after %d attempt(s): %s", delivery.attempts, delivery.problem
            )
        return delivery


def alert_webhook(settings: Settings) -> AlertWebhook:
    return AlertWebhook(
        url=dg.EnvVar(WEBHOOK_VARIABLE) if settings.alert_webhook else None,
        webserver_url=settings.webserver_url,
    )


@dg.run_failure_sensor(
    default_status=dg.DefaultSensorStatus.RUNNING,
    minimum_interval_seconds=TICK_SECONDS,
    description="Posts each failed run (run id, job, failed step, first line of its error, a "
    "link to the run) to PENGUIN_ALERT_WEBHOOK.",
)
def run_failure_alert_sensor(context: dg.RunFailureSensorContext, alert_webhook: AlertWebhook):
    run = context.dagster_run
    failures = context.get_step_failure_events()
    if failures:
        step = failures[0].step_key
        error = failures[0].step_failure_data.error
        message = error_line(error) if error else failures[0].message
    else:  # the run failed before or between steps (launch, a resource, the executor)
        step, message = None, context.failure_event.message
    text = notify.run_failed_text(
        run.run_id, run.job_name, step, message, alert_webhook.webserver_url
    )
    alert_webhook.alert(text, context.log)


def error_line(error) -> str:
    """The step's own error, not Dagster's wrapper around it ("Error occurred while executing op
    ..."), as `Class: first line` without the class's module path."""
    if error.cls_name == "DagsterExecutionStepExecutionError" and error.cause is not None:
        error = error.cause
    name, sep, rest = notify.first_line(error.message).partition(": ")
    return f"{name.rsplit('.', 1)[-1]}{sep}{rest}"


def quarantine_alerts(metadata: dict) -> list[str]:
    """One alert per landing file raw_penguins moved to quarantine in one materialization."""
    entry = metadata.get(QUARANTINED)
    files = entry.value if entry is not None else []
    return [notify.quarantine_text(f["file"], f["problem"], f.get("moved_to")) for f in files]


def champion_alerts(metadata: dict) -> list[str]:
    """An alert when penguin_champion newly decided to keep the champion (drift, a worse metric,
    nothing to compare on); a repeated decision (no new challenger) is not news."""
    value = {key: getattr(entry, "value", entry) for key, entry in metadata.items()}
    if value.get("promoted", True) or not value.get("newly_decided", False):
        return []
    return [notify.champion_kept_text(value["champion"], value["challenger"], value["reason"])]


def materialization_alert_sensor(name: str, asset: str, alerts, description: str):
    """A sensor that reads `asset`'s new materializations from the event log (its cursor: the
    last storage id read) and sends what `alerts(metadata)` words. On its first tick it starts
    from the newest materialization: history is not news."""

    @dg.sensor(
        name=name,
        description=description,
        default_status=dg.DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=TICK_SECONDS,
    )
    def _sensor(context: dg.SensorEvaluationContext, alert_webhook: AlertWebhook):
        key = dg.AssetKey(asset)
        if context.cursor is None:
            newest = context.instance.fetch_materializations(key, limit=1)
            context.update_cursor(newest.cursor if newest.records else "")
            return dg.SkipReason(f"started: alerts for {asset} materializations from now on")
        result = context.instance.fetch_materializations(
            key, limit=BATCH, cursor=context.cursor or None, ascending=True
        )
        sent = 0
        for record in result.records:
            materialization = record.asset_materialization
            for text in alerts(materialization.metadata if materialization else {}):
                alert_webhook.alert(text, context.log)
                sent += 1
        if result.records:
            context.update_cursor(result.cursor)
        return dg.SkipReason(
            f"{len(result.records)} materialization(s) of {asset}, {sent} alert(s)"
        )

    return _sensor


quarantine_alert_sensor = materialization_alert_sensor(
    "quarantine_alert_sensor",
    "raw_penguins",
    quarantine_alerts,
    "Posts each landing file raw_penguins moved to quarantine (file and reason) to "
    "PENGUIN_ALERT_WEBHOOK.",
)
champion_alert_sensor = materialization_alert_sensor(
    "champion_alert_sensor",
    "penguin_champion",
    champion_alerts,
    "Posts each penguin_champion decision that keeps the champion (input drift, a worse held-out "
    "RMSE) to PENGUIN_ALERT_WEBHOOK.",
)


def alert_definitions(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        sensors=[run_failure_alert_sensor, quarantine_alert_sensor, champion_alert_sensor],
        resources={"alert_webhook": alert_webhook(settings)},
    )
