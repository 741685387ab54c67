"""`make dev` as a user runs it in a terminal: the URL it prints, no start-up warning, Ctrl-C."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from ..processes import BIN, ROOT, free_port, instance_home, project_env, wait_for
from .conftest import answers, stop_group

pytestmark = pytest.mark.integration


def children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            pid, rest = stat.read_text().split(" (", 1)
        except OSError:  # gone meanwhile
            continue
        ppid = int(rest.rsplit(") ", 1)[1].split()[1])
        tree.setdefault(ppid, []).append(int(pid))
    return tree


def descendants(pid: int) -> set[int]:
    tree, found, todo = children(), set(), [pid]
    while todo:
        for child in tree.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def alive(pids: set[int]) -> set[int]:
    """Those still running (a zombie has exited: it only waits for its parent to reap it)."""
    running = set()
    for pid in pids:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            running.add(pid)
    return running


def command_lines(pids: set[int]) -> list[str]:
    lines = []
    for pid in pids:
        try:
            lines.append(
                Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()[:150]
            )
        except OSError:
            pass
    return lines


def project_root_like(tmp: Path) -> Path:
    """A folder laid out as the project root (links to its code, environment and Makefile) with a
    dagster.yaml of its own: `make dev` runs there exactly as in the project, DAGSTER_HOME the
    folder itself, its storage in its own .dagster_home/, not in the project's."""
    root = tmp / "project"
    root.mkdir()
    for name in ("Makefile", "pyproject.toml", "uv.lock", "workspace.yaml", "penguin_pipeline"):
        (root / name).symlink_to(ROOT / name)
    for name in (".venv", ".venv-uv"):
        if (ROOT / name).exists():
            (root / name).symlink_to(ROOT / name)
    (root / "dagster.yaml").write_text((ROOT / "dagster.yaml").read_text())
    return root


def test_make_dev_prints_its_url_warns_nothing_and_ctrl_c_leaves_no_process(tmp_path):
    root = project_root_like(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "make-dev.log"
    env = project_env(root, tmp_path / "data")
    with open(log, "wb") as out:
        # A new session, as a terminal gives its foreground job; Ctrl-C is SIGINT to the group.
        make = subprocess.Popen(
            ["make", "dev", f"DAGSTER_PORT={port}"],
            cwd=root,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    tree: set[int] = set()
    try:
        wait_for(
            lambda: make.poll() is not None or answers(f"{url}/server_info"),
            timeout=180,
            what=f"make dev's UI at {url}",
        )
        assert make.poll() is None, log.read_text(errors="replace")
        # the daemon is up too: it evaluated the sensors
        wait_for(
            lambda: "SensorDaemon" in log.read_text(errors="replace"), timeout=60, what="the daemon"
        )
        tree = descendants(make.pid) | {make.pid}
        assert len(tree) >= 5, command_lines(tree)  # make, uv, dg, webserver, daemon, code servers

        os.killpg(make.pid, signal.SIGINT)
        # 2-5 s here, idle or beside the production-profile tests. `dg dev` itself waits up to 60 s
        # for the UI and the daemon before it kills them: the bound is that, plus margin.
        try:
            wait_for(lambda: not alive(tree), timeout=90, interval=0.2, what="Ctrl-C")
        except TimeoutError:
            pytest.fail(f"still running 90 s after Ctrl-C: {command_lines(alive(tree))}")
    finally:
        stop_group(make, first=signal.SIGKILL, grace=5)
        for pid in alive(tree):  # whatever left the group: this test's own processes only
            os.kill(pid, signal.SIGKILL)

    printed = log.read_text(errors="replace")
    assert f"Dagster UI at {url}" in printed
    assert "will not be used" not in printed  # "found a dagster.yaml in the current folder ..."
    assert "superseded" not in printed.lower() and "Use 'dg dev' instead" not in printed
    assert "Warning" not in printed, [line for line in printed.splitlines() if "Warning" in line]


@pytest.mark.browser
def test_ctrl_c_right_after_a_run_from_the_ui_stops_everything_within_10_s(tmp_path, browsing):
    """The case that took 15 s: "Materialize all" clicked in the UI, the run done, the page still
    open (its live connections to the webserver), then Ctrl-C."""
    from . import dagster_pages as ui

    root = project_root_like(tmp_path)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "make-dev.log"
    with open(log, "wb") as out:
        make = subprocess.Popen(
            ["make", "dev", f"DAGSTER_PORT={port}"],
            cwd=root,
            env=project_env(root, tmp_path / "data"),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    browsing.server_logs.append(log)
    tree: set[int] = set()
    try:
        wait_for(lambda: answers(f"{url}/server_info"), timeout=180, what=f"make dev at {url}")
        ui.open_ui(browsing.page, url)
        ui.open_job(browsing.page, "penguin_job")
        ui.materialize_all(browsing.page)
        wait_for(
            lambda: "RUN_SUCCESS" in log.read_text(errors="replace"), timeout=180, what="the run"
        )
        tree = descendants(make.pid) | {make.pid}
        os.killpg(make.pid, signal.SIGINT)
        started = time.monotonic()
        try:
            wait_for(lambda: not alive(tree), timeout=10, interval=0.2, what="Ctrl-C")
        except TimeoutError:
            pytest.fail(f"still running 10 s after Ctrl-C: {command_lines(alive(tree))}")
        print(f"make dev stopped {time.monotonic() - started:.1f} s after Ctrl-C")
    finally:
        stop_group(make, first=signal.SIGKILL, grace=5)
        for pid in alive(tree):
            os.kill(pid, signal.SIGKILL)


def test_dg_check_defs_loads_the_project_without_a_warning(tmp_path):
    env = project_env(instance_home(tmp_path), tmp_path / "data", VIRTUAL_ENV=str(BIN.parent))
    checked = subprocess.run(
        [str(BIN / "dg"), "check", "defs"], env=env, cwd=ROOT, capture_output=True, text=True
    )
    printed = checked.stdout + checked.stderr
    assert checked.returncode == 0, printed
    assert "All definitions loaded successfully" in printed
    assert "warning" not in printed.lower(), printed
