"""Real Chromium (Playwright) against real servers: the Dagster UI, the API's docs, the report file.

The browser is Debian's `chromium` (`make browser` installs it as root), found on the machine:
Playwright's own browser download is not reachable from every machine. Without one, every browser
test errors with the reason; `PENGUIN_BROWSER_TESTS_OPTIONAL=1` turns that into a skip (still listed
in the `-ra` summary). Never a silent pass.

Every server starts on a free port with a temporary DAGSTER_HOME and data folder, and is always
stopped. A failing test leaves a screenshot, the page's console log and the servers' logs in
`.test-artifacts/<test>/` (gitignored).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from ..processes import BIN, ROOT, free_port, instance_home, project_env, wait_for

ARTIFACTS = ROOT / ".test-artifacts"
OPTIONAL_ENV = "PENGUIN_BROWSER_TESTS_OPTIONAL"
CHROMIUM_ENV = "PENGUIN_CHROMIUM"
# Debian's /usr/bin/chromium is a shell wrapper around /usr/lib/chromium/chromium.
CHROMIUM_CANDIDATES = (
    "/usr/lib/chromium/chromium",
    "chromium",
    "chromium-browser",
    "google-chrome",
    "google-chrome-stable",
    "/snap/bin/chromium",
)
LOCAL_PREFIXES = ("http://127.0.0.1:", "file://", "data:", "blob:", "about:")


def find_chromium() -> str | None:
    """$PENGUIN_CHROMIUM, else the first Chromium or Chrome on this machine."""
    explicit = os.environ.get(CHROMIUM_ENV)
    candidates = (explicit,) if explicit else CHROMIUM_CANDIDATES
    for name in candidates:
        path = shutil.which(name)
        if path:
            return path
    return None


# --- results on the item, so fixtures can tell a failed test at teardown --------------------------


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    setattr(item, f"rep_{report.when}", report)


def failed(request) -> bool:
    return any(
        getattr(getattr(request.node, f"rep_{when}", None), "failed", False)
        for when in ("setup", "call")
    )


def artifact_dir(request) -> Path:
    name = re.sub(
        r"[^A-Za-z0-9_.-]+", "_", request.node.nodeid.split("penguin_pipeline_tests/")[-1]
    )
    return ARTIFACTS / name


@pytest.fixture(autouse=True)
def _server_logs_on_failure(request):
    """Remove an earlier failure's artifacts first (they would mislead); after a failure, keep the
    logs of the servers the test used (the browser fixture adds the screenshot and console)."""
    shutil.rmtree(artifact_dir(request), ignore_errors=True)
    # looked up now: at teardown these fixtures may be gone already
    tmp = request.getfixturevalue("tmp_path") if "tmp_path" in request.fixturenames else None
    yield
    if not failed(request):
        return
    logs = list(tmp.glob("*.log")) if tmp else []
    if "dagster_ui" in request.fixturenames:
        logs.append(request.getfixturevalue("dagster_ui").log)  # session-scoped: still there
    folder = artifact_dir(request)
    for log in logs:
        if log.exists():
            folder.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, folder / log.name)


# --- the browser ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium_path() -> str:
    path = find_chromium()
    if path is None:
        reason = (
            f"no Chromium on this machine (looked for {CHROMIUM_ENV}, "
            f"{', '.join(CHROMIUM_CANDIDATES)}): "
            "run `make browser` as root (apt-get install chromium) or set "
            f"{CHROMIUM_ENV}=/path/to/chrome"
        )
        if os.environ.get(OPTIONAL_ENV) == "1":
            pytest.skip(f"BROWSER TESTS NOT RUN: {reason}")
        pytest.fail(f"{reason}; or set {OPTIONAL_ENV}=1 to skip the browser tests", pytrace=False)
    return path


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=chromium_path, headless=True)
        try:
            yield chromium
        finally:
            chromium.close()


@dataclass
class Browsing:
    """One browser context's page, with what it tried to fetch beyond 127.0.0.1 and its console."""

    page: object
    blocked: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    console: list[str] = field(default_factory=list)
    server_logs: list[Path] = field(default_factory=list)


@pytest.fixture
def browsing(browser, request) -> Browsing:
    """A fresh context; every request that leaves this machine is blocked and recorded."""
    from playwright.sync_api import expect

    expect.set_options(timeout=15_000)  # the Dagster UI renders on a shared 2-core machine
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    page = context.new_page()
    browsing = Browsing(page)

    def route(route):
        url = route.request.url
        if url.startswith(LOCAL_PREFIXES):
            route.continue_()
        else:
            browsing.blocked.append(url)
            route.abort()

    context.route(re.compile(r".*"), route)
    page.on("request", lambda r: browsing.requests.append(f"{r.method} {r.url[:200]}"))
    page.on("console", lambda m: browsing.console.append(f"{m.type}: {m.text}"))
    page.on("pageerror", lambda e: browsing.console.append(f"pageerror: {e}"))
    try:
        yield browsing
    finally:
        if failed(request):
            save_artifacts(request, browsing)
        context.close()


def save_artifacts(request, browsing: Browsing) -> None:
    folder = artifact_dir(request)
    folder.mkdir(parents=True, exist_ok=True)
    try:
        browsing.page.screenshot(
            path=str(folder / "screenshot.png"), full_page=True, timeout=10_000
        )
    except Exception as exc:  # a crashed page still leaves its logs
        (folder / "screenshot-failed.txt").write_text(repr(exc))
    (folder / "url.txt").write_text(browsing.page.url + "\n")
    (folder / "console.log").write_text("\n".join(browsing.console) + "\n")
    (folder / "requests.log").write_text("\n".join(browsing.requests) + "\n")
    (folder / "blocked.log").write_text("\n".join(browsing.blocked) + "\n")
    for log in browsing.server_logs:
        if log.exists():
            shutil.copyfile(log, folder / log.name)
    sys.stderr.write(f"\nbrowser artifacts: {folder}\n")


# --- the servers ----------------------------------------------------------------------------------


def stop_group(process: subprocess.Popen, first=signal.SIGINT, grace: float = 20) -> None:
    """Stop a server started in its own session as Ctrl-C would, then kill what is left."""
    if process.poll() is None:
        try:
            os.killpg(process.pid, first)
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        except ProcessLookupError:
            return
    try:
        os.killpg(
            process.pid, signal.SIGKILL
        )  # stragglers in the group (code servers, run workers)
    except ProcessLookupError:
        pass
    process.wait(timeout=10)


def answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@dataclass
class DagsterUI:
    url: str
    port: int
    home: Path
    data: Path
    env: dict
    log: Path


@contextmanager
def dg_dev(tmp: Path, home: Path, data: Path, env: dict) -> Iterator[DagsterUI]:
    """`dg dev` (the UI, the daemon and a code server) on a free port until the block ends."""
    port = free_port()
    log = tmp / "dagster-dev.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [str(BIN / "dg"), "dev", "-h", "127.0.0.1", "-p", str(port)],
            env=env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    ui = DagsterUI(f"http://127.0.0.1:{port}", port, home, data, env, log)
    try:
        wait_for(
            lambda: process.poll() is not None or answers(f"{ui.url}/server_info"),
            timeout=120,
            what=f"the Dagster UI on port {port} (log: {log})",
        )
        if process.poll() is not None:
            raise RuntimeError(
                f"dg dev exited {process.returncode}:\n{log.read_text(errors='replace')[-3000:]}"
            )
        yield ui
    finally:
        stop_group(process)


def seed(env: dict) -> str:
    """`penguin-pipeline seed`, as `make dev` runs it before the UI starts."""
    seeded = subprocess.run(
        [str(BIN / "penguin-pipeline"), "seed"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    return seeded.stdout


def landed_files(data: Path) -> list[str]:
    """The landing zone's files by their partition key (the name below the landing root)."""
    raw = data / "raw"
    return sorted(str(p.relative_to(raw)) for p in raw.rglob("*") if p.is_file())


@pytest.fixture(scope="session")
def dagster_ui(tmp_path_factory):
    """`make dev`'s Dagster UI and daemon (`dg dev`), shared by the UI and GraphQL tests.

    A temporary DAGSTER_HOME (the project's dagster.yaml) and data folder, and `penguin-pipeline
    seed` before the start as `make dev` runs it: it lands the shipped LTER file in the empty
    landing zone and registers it as a raw_penguins partition, so "Materialize all" offers it
    with no wait for a sensor's first tick. The landing sensors every 2 s.
    """
    import dagster as dg

    tmp = tmp_path_factory.mktemp("dagster_ui")
    home = instance_home(tmp)
    data = tmp / "data"
    env = project_env(
        home, data, PENGUIN_SENSOR_INTERVAL_SECONDS="2", VIRTUAL_ENV=str(Path(sys.prefix))
    )
    seed(env)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_dynamic_partitions("landing_files") == landed_files(data)
    with dg_dev(tmp, home, data, env) as ui:
        yield ui


DEFINITIONS_QUERY = """
{ repositoriesOrError { ... on RepositoryConnection { nodes {
    sensors { name } schedules { name }
    assetNodes { assetKey { path } groupName isMaterializable } } } } }
"""


@dataclass
class Definitions:
    """What the running webserver serves, as its GraphQL API tells any client."""

    groups: dict[str, str]  # asset -> group
    materializable: set[str]
    sensors: list[str]
    schedules: list[str]


@pytest.fixture(scope="session")
def served(dagster_ui) -> Definitions:
    with urllib.request.urlopen(
        urllib.request.Request(
            f"{dagster_ui.url}/graphql",
            data=json.dumps({"query": DEFINITIONS_QUERY}).encode(),
            headers={"Content-Type": "application/json"},
        ),
        timeout=30,
    ) as response:
        repositories = json.load(response)["data"]["repositoriesOrError"]["nodes"]
    nodes = [node for repository in repositories for node in repository["assetNodes"]]
    return Definitions(
        groups={"/".join(n["assetKey"]["path"]): n["groupName"] for n in nodes},
        materializable={"/".join(n["assetKey"]["path"]) for n in nodes if n["isMaterializable"]},
        sensors=sorted(s["name"] for r in repositories for s in r["sensors"]),
        schedules=sorted(s["name"] for r in repositories for s in r["schedules"]),
    )


@dataclass
class PipelineOutputs:
    data: Path
    env: dict
    settings: object


@pytest.fixture(scope="session")
def pipeline_outputs(tmp_path_factory) -> PipelineOutputs:
    """`penguin-pipeline run` (what `make run` runs) once on the shipped file: warehouse, model
    pin, report."""
    from penguin_pipeline.settings import load_settings

    tmp = tmp_path_factory.mktemp("pipeline_run")
    home = instance_home(tmp)
    data = tmp / "data"
    env = project_env(home, data)
    done = subprocess.run(
        [str(BIN / "penguin-pipeline"), "run"],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return PipelineOutputs(data, env, load_settings(env))
