"""The Dagster UI as a user meets it after `make dev`: lineage, "Materialize all", runs, checks,
automation."""

from __future__ import annotations

import re
import subprocess

import pytest
from playwright.sync_api import expect

from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from ..processes import BIN, ROOT, wait_for
from . import dagster_pages as ui

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# The pipeline's assets and checks as README describes them; the tests also follow whatever else the
# running definitions hold (sources, sensors, schedules), as the webserver's GraphQL API lists them.
GROUPS = {
    "raw_penguins": "raw",
    "penguins": "clean",
    "penguin_summary": "clean",
    "model_monitoring": "model",
    "penguin_model": "model",
    "penguin_champion": "model",
    "penguin_report": "report",
}
CHECKS = {
    "rows_accounted": "raw_penguins",
    "penguins_values_allowed": "penguins",
    "penguins_one_row_per_individual": "penguins",
    "penguins_row_count_kept": "penguins",
    "r2_floor": "penguin_model",
    "sample_matches_all_rows": "penguin_model",
    "input_drift": "model_monitoring",
}


@pytest.fixture
def page(browsing, dagster_ui):
    browsing.server_logs.append(dagster_ui.log)
    ui.open_ui(browsing.page, dagster_ui.url)
    return browsing.page


def test_lineage_shows_every_asset_in_its_group_and_materialize_all_succeeds_with_checks_passed(
    page, served
):
    assert served.groups.items() >= GROUPS.items(), served.groups
    ui.go_to(page, "Lineage")
    graph = ui.expand_all_groups(page)
    groups = sorted(set(served.groups.values()))
    drawn = {asset: ui.group_of(graph, asset, groups) for asset in served.groups}
    assert drawn == served.groups

    ui.open_job(page, "penguin_job")  # README's click path: the job's own run, not a hidden job's
    launched = ui.materialize_all(page)
    assert launched.kind == "run"  # one landing file: one partition, one run
    ui.open_run(page, launched.id)
    expect(page.get_by_role("link", name="penguin_job", exact=True).first).to_be_visible()
    ui.wait_for_run_success(page)
    expect(page.get_by_text("partition: penguins-raw.csv").first).to_be_visible()
    expect(
        page.get_by_text(f"{len(served.materializable)} assets", exact=True).first
    ).to_be_visible()

    count, lines = ui.run_check_results(page)
    assert count == len(lines) >= len(CHECKS)
    assert not [line for line in lines if " failed " in line], lines
    for check, asset in CHECKS.items():
        assert f"Check {check} succeeded for materialization of {asset}." in lines, (check, lines)


def test_automation_page_shows_every_sensor_and_schedule_running(page, served):
    assert served.sensors and "palmer_lter_schedule" in served.schedules, served
    ui.go_to(page, "Automation")
    for name in served.sensors + served.schedules:
        row = ui.automation_row(page, name)
        expect(row).to_be_visible()
        expect(row.get_by_role("checkbox", checked=True)).to_have_count(1)  # its switch is on
        expect(row).to_contain_text("sensor" if name in served.sensors else "Scheduled")


def test_a_new_landing_file_runs_by_sensor_and_shows_on_the_assets_page(page, dagster_ui, served):
    settings = load_settings(dagster_ui.env)
    landed = subprocess.run(
        [str(BIN / "penguin-pipeline"), "new-data", "--rows", "120", "--seed", "7"],
        env=dagster_ui.env,
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    name = re.search(r"(season-\d{4}\.csv)", landed).group(1)

    ui.go_to(page, "Runs")
    row = ui.run_row(page, f"partition: {name}")
    expect(row).to_be_visible(
        timeout=ui.RUN_TIMEOUT_MS
    )  # the list polls; the sensor ticks every 2 s
    launched_by = row.get_by_role(
        "link", name=re.compile("^(" + "|".join(map(re.escape, served.sensors)) + ")$")
    )
    expect(launched_by).to_be_visible()
    expect(row).to_contain_text("Success", timeout=ui.RUN_TIMEOUT_MS)
    run_id = row.get_by_role("link", name=re.compile(r"^run [0-9a-f]{8}$")).inner_text().strip()

    facts = wait_for(
        lambda: boards.latest_model_facts(boards.board_from_url(settings.board_url)),
        timeout=30,
        what="the model pin",
    )
    assert ui.latest_materialization(page, "penguin_model") == run_id
    for key in ("version", "rows_used", "data_snapshot"):
        expect(page.get_by_role("row", name=f"{key} {facts[key]}", exact=True)).to_be_visible()
    # the new season's rows are in the model: more than the shipped file's 333 complete rows
    assert int(facts["rows_used"]) > 333
