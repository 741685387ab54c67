"""Schedules and freshness from the source registry; the landing sensor's ticks."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from datetime import timedelta
from pathlib import Path

import dagster as dg
import pytest

from penguin_pipeline import cli, sources
from penguin_pipeline.dataflow import END, START, mermaid_chart
from penguin_pipeline.definitions import defs
from penguin_pipeline.defs.automation import register_new_partitions, whole_landing_tags
from penguin_pipeline.defs.resources import LandingZone

from .conftest import LTER_FILE, lter_lines, query, write_lines

ROOT = Path(__file__).resolve().parents[1]


def landing_resource(settings) -> LandingZone:
    return LandingZone(url=settings.landing_url, quarantine_url=settings.quarantine_url)


def schedule_context(instance, settings) -> dg.ScheduleEvaluationContext:
    # Use it in a `with`: the context opens its own instance from the test instance's ref, and
    # left open it is closed by the garbage collector later, which restores a finished test's
    # instance as Dagster's current one and breaks a later test's defs() ("undefined weakref").
    return dg.build_schedule_context(
        instance=instance, resources={"landing": landing_resource(settings)}
    )


def tick(definitions, instance, settings, cursor=None, source="palmer_lter"):
    sensor = definitions.resolve_sensor_def(f"{source}_sensor")
    with dg.build_sensor_context(
        instance=instance,
        cursor=cursor,
        definitions=definitions,
        resources={"landing": landing_resource(settings)},
    ) as context:
        # Calling the sensor returns its SensorResult as the daemon gets it (evaluate_tick would
        # first validate the partition keys that the same result is about to add).
        return sensor(context)


def test_schedule_and_freshness_follow_the_registry(data_dir, instance, monkeypatch):
    definitions = defs()
    schedule = definitions.resolve_schedule_def("palmer_lter_schedule")
    assert schedule.cron_schedule == "0 6 * * *"
    graph = definitions.resolve_asset_graph()
    for key in graph.materializable_asset_keys:
        policy = graph.get(key).freshness_policy
        assert (policy.deadline_cron, policy.lower_bound_delta) == ("0 6 * * *", timedelta(days=1))
    weekly = graph.get(dg.AssetKey("lter_gentoo")).freshness_policy
    assert (weekly.deadline_cron, weekly.lower_bound_delta) == ("0 7 * * 1", timedelta(days=7))

    hourly = dataclasses.replace(sources.SOURCES[0], cadence_cron="15 * * * *")
    monkeypatch.setattr(sources, "SOURCES", (hourly, *sources.SOURCES[1:]))
    changed = defs()
    assert changed.resolve_schedule_def("palmer_lter_schedule").cron_schedule == "15 * * * *"
    report_policy = (
        changed.resolve_asset_graph().get(dg.AssetKey("penguin_report")).freshness_policy
    )
    assert (report_policy.deadline_cron, report_policy.lower_bound_delta) == (
        "15 * * * *",
        timedelta(hours=1),
    )
    assert "cron 15 * * * *" in mermaid_chart()
    assert hourly.next_expected().minute == 15


def test_a_new_source_is_one_registry_entry(data_dir, instance, monkeypatch):
    emperor = sources.Source(
        name="lter_emperor",
        description="Emperor penguins.",
        owner="team:field-data",
        prefix="emperor",
        cadence_cron="0 9 * * *",
    )
    monkeypatch.setattr(sources, "SOURCES", (*sources.SOURCES, emperor))
    definitions = defs()
    assert definitions.resolve_sensor_def("lter_emperor_sensor")
    assert definitions.resolve_schedule_def("lter_emperor_schedule").cron_schedule == "0 9 * * *"
    graph = definitions.resolve_asset_graph()
    assert dg.AssetKey("lter_emperor") in graph.get(dg.AssetKey("raw_penguins")).parent_keys
    assert graph.get(dg.AssetKey("lter_emperor")).freshness_policy.deadline_cron == "0 9 * * *"


def test_each_source_sensor_sees_only_its_own_prefix(settings, landing_dir, instance):
    definitions = defs()
    header, *rows = lter_lines()
    for species, study in (("adelie", "PAL1011"), ("gentoo", "PAL1112"), ("elsewhere", "PAL1213")):
        (landing_dir / species).mkdir()
        write_lines(
            landing_dir / species / "2010.csv",
            [header] + [r.replace("PAL0708", study) for r in rows[:5]],
        )
    [adelie] = tick(definitions, instance, settings, source="lter_adelie").run_requests
    [gentoo] = tick(definitions, instance, settings, source="lter_gentoo").run_requests
    assert (adelie.partition_key, gentoo.partition_key) == ("adelie/2010.csv", "gentoo/2010.csv")
    assert adelie.tags["penguin/source"] == "lter_adelie"
    assert isinstance(tick(definitions, instance, settings, source="lter_chinstrap"), dg.SkipReason)
    assert isinstance(
        tick(definitions, instance, settings), dg.SkipReason
    )  # nothing at the landing root
    register_new_partitions(instance, ["adelie/2010.csv", "gentoo/2010.csv"])
    raw_only = definitions.resolve_job_def("penguin_job").execute_in_process(
        instance=instance,
        asset_selection=[dg.AssetKey("raw_penguins")],
        tags=whole_landing_tags(instance),
    )
    assert raw_only.success  # the unregistered folder "elsewhere" is not loaded
    assert query(
        settings, "SELECT source_file, count(*) FROM raw_penguins GROUP BY 1 ORDER BY 1"
    ) == [("adelie/2010.csv", 5), ("gentoo/2010.csv", 5)]


def test_report_names_the_next_expected_update(settings, instance, monkeypatch):
    weekly = dataclasses.replace(sources.SOURCES[0], cadence_cron="0 7 * * 1")
    monkeypatch.setattr(sources, "SOURCES", (weekly,))
    assert cli.run_pipeline(instance).success
    html = Path(settings.report_url).read_text(encoding="utf-8")
    assert "weekly on Monday at 07:00 UTC" in html and "`" not in html
    assert f"next {weekly.next_expected():%Y-%m-%d} 07:00 UTC" in html


def test_cadences_in_words():
    assert sources.cron_in_words("0 6 * * *") == "daily at 06:00 UTC"
    assert sources.cron_in_words("0 7 * * 1") == "weekly on Monday at 07:00 UTC"
    assert sources.cron_in_words("30 8 1 * *") == "monthly on day 1 at 08:30 UTC"
    assert sources.cron_in_words("*/15 * * * *") == "on the cron schedule */15 * * * * (UTC)"


def test_readme_chart_is_generated_from_the_definitions(data_dir, instance):
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    current = re.search(re.escape(START) + r"\n(.*?)\n" + re.escape(END), readme, re.S)
    assert current, "README lacks the data-flow chart block"
    assert current.group(1) == mermaid_chart(), "README's chart is stale: run `make chart`"


def test_sensor_one_run_per_file_content(settings, landing_dir, instance):
    definitions = defs()
    shutil.copyfile(LTER_FILE, landing_dir / "penguins-raw.csv")
    first = tick(definitions, instance, settings)
    [request] = first.run_requests
    assert request.partition_key == "penguins-raw.csv"
    assert request.run_key.startswith("penguins-raw.csv:")
    assert first.dynamic_partitions_requests[0].partition_keys == ["penguins-raw.csv"]

    same = tick(definitions, instance, settings, cursor=first.cursor)
    assert isinstance(same, dg.SkipReason) and "no new or changed" in same.skip_message

    write_lines(landing_dir / "penguins-raw.csv", lter_lines()[:50])  # same name, new content
    (landing_dir / "season-2010.csv").write_bytes(LTER_FILE.read_bytes())
    changed = tick(definitions, instance, settings, cursor=first.cursor)
    keys = sorted(r.run_key for r in changed.run_requests)
    assert len(keys) == 2 and request.run_key not in keys
    assert json.loads(changed.cursor)["penguins-raw.csv"]["generation"] == 2


def test_file_back_to_earlier_content_runs_again(settings, landing_dir, instance):
    definitions = defs()
    path = landing_dir / "a.csv"
    write_lines(path, lter_lines()[:10])
    one = tick(definitions, instance, settings)
    write_lines(path, lter_lines()[:20])
    two = tick(definitions, instance, settings, cursor=one.cursor)
    write_lines(path, lter_lines()[:10])
    three = tick(definitions, instance, settings, cursor=two.cursor)
    keys = [r.run_key for result in (one, two, three) for r in result.run_requests]
    assert len(set(keys)) == 3


def run_the_request(definitions, instance, result):
    """Do what the daemon does with a tick's one run request: add its partition, run penguin_job."""
    [request] = result.run_requests
    instance.add_dynamic_partitions(
        "landing_files", result.dynamic_partitions_requests[0].partition_keys
    )
    return definitions.resolve_job_def("penguin_job").execute_in_process(
        instance=instance, partition_key=request.partition_key, raise_on_error=False
    )


def test_sensor_run_loads_the_file_and_refreshes_downstream(settings, landing_dir, instance):
    assert cli.run_pipeline(instance).success
    definitions = defs()
    cursor = tick(definitions, instance, settings).cursor
    cli.new_season(rows=120, seed=7)
    result = tick(definitions, instance, settings, cursor=cursor)
    run = run_the_request(definitions, instance, result)
    assert run.success
    done = sorted({e.asset_key.to_user_string() for e in run.get_asset_materialization_events()})
    assert done == [
        "model_monitoring",
        "penguin_champion",
        "penguin_model",
        "penguin_report",
        "penguin_summary",
        "penguins",
        "raw_penguins",
    ]
    rows = query(
        settings, "SELECT count(*) FROM raw_penguins WHERE source_file = 'season-2010.csv'"
    )[0][0]
    rejected = query(settings, "SELECT count(*) FROM rejected_penguins")[0][0]
    assert rows + rejected == 120 and rejected == 0


def test_schedule_requests_one_run_over_every_landing_file(settings, landing_dir, instance):
    definitions = defs()
    for name in ("a.csv", "b.csv", "c.csv"):
        shutil.copyfile(LTER_FILE, landing_dir / name)
    schedule = definitions.resolve_schedule_def("palmer_lter_schedule")
    with schedule_context(instance, settings) as context:
        [request] = schedule.evaluate_tick(context).run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "a.csv"
    assert request.tags["dagster/asset_partition_range_end"] == "c.csv"
    assert instance.get_dynamic_partitions("landing_files") == ["a.csv", "b.csv", "c.csv"]


def test_schedule_skips_an_empty_landing_zone(settings, landing_dir, instance):
    schedule = defs().resolve_schedule_def("palmer_lter_schedule")
    with schedule_context(instance, settings) as context:
        assert "empty" in schedule.evaluate_tick(context).skip_message


@pytest.mark.parametrize("rows", [150])
def test_new_data_lands_a_realistic_next_season(settings, seeded_landing, rows):
    first = cli.new_season(rows=rows, seed=1)
    second = cli.new_season(rows=rows, seed=2)
    assert first.endswith("season-2010.csv") and second.endswith("season-2011.csv")
    text = (seeded_landing / "season-2010.csv").read_text(encoding="utf-8").splitlines()
    assert text[0] == lter_lines()[0] and len(text) == rows + 1
    assert all(line.startswith("PAL1011,") for line in text[1:])


def test_sensor_run_on_a_bad_file_quarantines_it_and_the_next_tick_skips(
    settings, seeded_landing, instance
):
    assert cli.run_pipeline(instance).success
    definitions = defs()
    cursor = tick(definitions, instance, settings).cursor
    (seeded_landing / "scan.csv").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 40)
    result = tick(definitions, instance, settings, cursor=cursor)
    run = run_the_request(definitions, instance, result)
    assert run.success  # the file's run warns (check landing_files_readable) and changes no table
    [quarantined] = cli.quarantined_files(run)
    assert quarantined["file"] == "scan.csv" and "cannot be read" in quarantined["problem"]
    reasons = list(Path(settings.quarantine_url).glob("*scan.csv.reason.txt"))
    assert len(reasons) == 1 and "scan.csv" in reasons[0].read_text()
    assert query(settings, "SELECT count(*) FROM raw_penguins") == [(344,)]
    assert isinstance(tick(definitions, instance, settings, cursor=result.cursor), dg.SkipReason)


def test_partitions_another_process_registers_at_the_same_moment_are_no_error(
    instance, monkeypatch
):
    """A schedule tick beside a sensor's: both add the same new files; Dagster's insert of the
    loser fails on its unique key, and the loser adds only what is still missing."""
    real_add = instance.add_dynamic_partitions
    tries = []

    def racing(partitions_def_name, keys):
        tries.append(list(keys))
        if len(tries) == 1:
            real_add(partitions_def_name, ["b.csv"])  # the other process's insert came first
            raise RuntimeError("UNIQUE constraint failed: dynamic_partitions.partition")
        real_add(partitions_def_name, keys)

    monkeypatch.setattr(instance, "add_dynamic_partitions", racing)
    assert register_new_partitions(instance, ["a.csv", "b.csv", "c.csv"]) == ["a.csv", "c.csv"]
    assert tries == [["a.csv", "b.csv", "c.csv"], ["a.csv", "c.csv"]]
    assert sorted(instance.get_dynamic_partitions("landing_files")) == ["a.csv", "b.csv", "c.csv"]


def test_a_partition_insert_that_keeps_failing_is_raised(instance, monkeypatch):
    def failing(partitions_def_name, keys):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(instance, "add_dynamic_partitions", failing)
    with pytest.raises(RuntimeError, match="database is locked"):
        register_new_partitions(instance, ["a.csv"])
