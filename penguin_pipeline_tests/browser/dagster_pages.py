"""Click paths through the Dagster UI, as a person takes them: roles and visible text.

Dagster's UI has few test ids, so each path lives here once; when the UI or the project changes
(for example how "Materialize all" asks for partitions), adjust the path here, not in every test.
Checked against dagster-webserver 1.13.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from playwright.sync_api import Locator, Page, expect

# Waiting for runs: the run itself takes a few seconds; the rest is the queue, run start and the
# UI's polling, all slower when the 2 cores are shared.
RUN_TIMEOUT_MS = 150_000


def open_ui(page: Page, url: str) -> None:
    """Open the UI, and skip the "Join the Dagster community" dialog that an instance shows once.

    It pops up a moment after the first page loads and would swallow the next click; the UI asks
    the server whether to show it, and so do we.
    """
    page.goto(url)
    answer = page.request.post(f"{url}/graphql", data={"query": "{ shouldShowNux }"}).json()
    if answer["data"]["shouldShowNux"]:
        page.get_by_role("button", name="Skip", exact=True).click()
        expect(page.get_by_role("button", name="Skip", exact=True)).to_be_hidden()


def go_to(page: Page, section: str) -> None:
    """Follow a link of the left navigation: Overview, Runs, Catalog, Automation, Lineage..."""
    page.get_by_role("navigation").get_by_role("link", name=re.compile(rf"{section}$")).click()


def expand_all_groups(page: Page) -> Locator:
    """On the lineage page, draw every asset inside its group box; returns the graph."""
    graph = page.locator("svg").filter(has=page.get_by_text("raw", exact=True))  # the drawn groups
    expect(graph).to_be_visible()
    if not graph.get_by_text("raw_penguins", exact=True).count():  # collapsed: group names only
        page.get_by_role(
            "button", name="settings", exact=True
        ).click()  # the graph's gear, not the nav's
        page.get_by_role("menuitem", name=re.compile("Expand all groups")).click()
    expect(graph.get_by_text("raw_penguins", exact=True)).to_be_visible()
    return graph


def group_of(graph: Locator, asset: str, groups: list[str]) -> str | None:
    """The group whose box, as drawn, holds the asset's node."""
    node = graph.get_by_text(asset, exact=True).bounding_box()
    for group in groups:
        box = (
            graph.locator("foreignObject")
            .filter(has=graph.page.get_by_text(group, exact=True))
            .first.bounding_box()
        )
        if (
            box
            and node
            and (
                box["x"] <= node["x"]
                and node["x"] + node["width"] <= box["x"] + box["width"]
                and box["y"] <= node["y"]
                and node["y"] + node["height"] <= box["y"] + box["height"]
            )
        ):
            return group
    return None


@dataclass(frozen=True)
class Launched:
    """What a "Materialize all" click path launched, and when its clicks were made (epoch s)."""

    kind: str  # "run" or "backfill"
    id: str  # the run's short id or the backfill's id
    clicked_at: float  # the "Materialize all" click
    launched_at: float  # the dialog's launch click


def open_job(page: Page, job: str) -> None:
    """Jobs -> the job's page, which draws the job's assets with their own "Materialize all"."""
    go_to(page, "Jobs")
    # The row's link is named by its icon, the job and its info icon: "job penguin_job info".
    page.get_by_role("link", name=re.compile(rf"^job {re.escape(job)}\b")).click()
    expect(page.get_by_role("button", name=re.compile(r"Materialize all"))).to_be_visible()


def materialize_all(page: Page, screenshot: Path | None = None) -> Launched:
    """The graph on the page (Lineage, or a job's page) -> "Materialize all…" -> partitions "All"
    -> launch; `screenshot`: the page with the dialog just before the launch click.

    With raw_penguins partitioned by landing file, the dialog asks which partitions: a user must
    pick "All". One partition launches one run ("Launch 1 run"); several launch a backfill, which
    from penguin_job's page is one run of penguin_job (its backfill policy is single-run).
    """
    clicked_at = time.time()
    page.get_by_role("button", name=re.compile(r"Materialize all")).click()
    dialog = page.get_by_role("dialog")
    pick_all_partitions(dialog)
    if screenshot is not None:
        page.screenshot(path=str(screenshot))
    launch = dialog.get_by_role("button", name=re.compile(r"^Launch (1 run|backfill)$"))
    launched_at = time.time()
    toast = page.get_by_text(re.compile(r"^(Launched run [0-9a-f]{8}|Created backfill \w+)$"))
    click_until_launched(launch, toast)
    words = toast.inner_text().split()
    kind = "run" if words[0] == "Launched" else "backfill"
    return Launched(kind, words[-1], clicked_at, launched_at)


def click_until_launched(launch: Locator, toast: Locator, attempts: int = 3) -> None:
    """Click the dialog's launch button until the launch toast shows.

    On a busy machine a click can land while the dialog is still re-rendering after "All" and be
    lost: the dialog then stays open with its button idle (seen in CI). A click that did launch
    turns the button into a disabled "Launching..." and closes the dialog, so clicking again only
    while the button is still there and enabled cannot launch twice; and a launch still under way
    after 10 s (a machine busy with other tests: seen in CI, the dialog still "Launching...") is
    given a minute more to show its toast."""
    for attempt in range(attempts):
        launch.click()
        try:
            expect(toast).to_be_visible(timeout=10_000)
            return
        except AssertionError:
            lost = launch.is_visible() and launch.is_enabled()
            if lost and attempt < attempts - 1:
                continue
            if lost:
                raise
            expect(toast).to_be_visible(timeout=60_000)
            return


def pick_all_partitions(dialog: Locator, timeout_s: float = 15) -> None:
    """Click "All" until the dialog says it chose one or more partitions: the dialog asks the
    server for the partition keys after it opens, and "All" clicked before they arrive chose none
    ("0 partitions"), as a person clicking at once would see too."""
    chosen = dialog.get_by_text(re.compile(r"^[1-9]\d* partitions?$"))
    deadline = time.time() + timeout_s
    while True:
        dialog.get_by_role("button", name="All", exact=True).click()
        try:
            expect(chosen).to_be_visible(timeout=1000)
            return
        except AssertionError:
            if time.time() > deadline:
                raise


def run_row(page: Page, text: str) -> Locator:
    """The row of the Runs list that shows `text` (a run id, a partition, a tag)."""
    return page.locator("[data-index]").filter(has_text=text)


def open_run(page: Page, short_id: str) -> None:
    """Runs list -> the run's page."""
    go_to(page, "Runs")
    page.get_by_role("link", name=f"run {short_id}", exact=True).click()
    expect(page.get_by_text(short_id, exact=True).first).to_be_visible()


def wait_for_run_success(page: Page) -> None:
    """On a run's page: the status in the header turns to Success (the page polls)."""
    status = page.get_by_text(re.compile(r"^(Success|Failure|Canceled)$")).first
    expect(status).to_have_text("Success", timeout=RUN_TIMEOUT_MS)


def run_check_results(page: Page) -> tuple[int, list[str]]:
    """On a run's page: the number of checks in the header, and every check evaluation's line."""
    selected = int(page.get_by_text(re.compile(r"^\d+ checks?$")).first.inner_text().split()[0])
    page.get_by_placeholder("Filter…").fill("type:ASSET_CHECK_EVALUATION")
    lines = page.get_by_text(
        re.compile(r"^Check \S+ (succeeded|failed) for materialization of \S+$")
    )
    expect(lines).to_have_count(selected)
    return selected, lines.all_inner_texts()


def automation_row(page: Page, name: str) -> Locator:
    """A sensor's or schedule's row on the Automation page (its link and its on/off switch)."""
    link = page.get_by_role("link", name=re.compile(rf"\b{re.escape(name)}\b"))
    return page.locator("div").filter(has=link).filter(has=page.get_by_role("checkbox")).last


def latest_materialization(page: Page, asset: str) -> str:
    """Catalog -> the asset -> Events: the latest materialization is selected; returns its run's
    short id (its metadata table is then on the page)."""
    go_to(page, "Catalog")
    page.get_by_role("link", name=re.compile(rf"(^|\s){re.escape(asset)}(\s|$)")).first.click()
    page.get_by_role("tab", name="Events").click()
    expect(page.get_by_text("Materialized in run").first).to_be_visible()
    return page.get_by_role("link", name=re.compile(r"^[0-9a-f]{8}$")).first.inner_text()
