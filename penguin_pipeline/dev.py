"""`make dev`: `dg dev` (the UI, the daemon, their code servers), and Ctrl-C that stops all of it.

On Ctrl-C `dg dev` stops the webserver and the daemon, but the code servers they started run on
until their heartbeat times out (30-45 s) and keep the terminal's processes alive: measured 15 s
and more after a run from the UI. This wrapper remembers every process `dg dev` starts while it
runs and, once `dg dev` has returned (or a few seconds after Ctrl-C), ends the ones still running.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time

import psutil

# How long dg dev may take to stop its own processes before the leftovers are ended for it.
GRACE_SECONDS = 4.0
POLL_SECONDS = 0.5


def remember_descendants(root: psutil.Process, known: dict[int, psutil.Process]) -> None:
    """Add the processes below `root` now: a code server whose parent has exited is no longer
    below it, so it must be seen while its parent still runs."""
    try:
        for child in root.children(recursive=True):
            known.setdefault(child.pid, child)
    except psutil.NoSuchProcess:
        pass


def end(processes: list[psutil.Process], wait: float = 1.5) -> None:
    """SIGTERM, then SIGKILL for what is still running after `wait` seconds. psutil checks each
    process's start time, so a reused pid is never signalled."""
    for process in processes:
        try:
            process.terminate()
        except psutil.NoSuchProcess:
            pass
    _, alive = psutil.wait_procs(processes, timeout=wait)
    for process in alive:
        try:
            process.kill()
        except psutil.NoSuchProcess:
            pass


def main(argv: list[str]) -> int:
    dg = subprocess.Popen(["dg", "dev", *argv])
    root, known = psutil.Process(dg.pid), {}
    interrupted_at = None

    def on_interrupt(_signum, _frame) -> None:
        nonlocal interrupted_at
        interrupted_at = interrupted_at or time.monotonic()

    # Ctrl-C reaches dg dev too (the terminal signals the whole process group): here it only
    # starts the clock for the leftovers.
    signal.signal(signal.SIGINT, on_interrupt)
    signal.signal(signal.SIGTERM, lambda *_: (on_interrupt(None, None), dg.send_signal(15)))
    while dg.poll() is None:
        remember_descendants(root, known)
        if interrupted_at and time.monotonic() - interrupted_at > GRACE_SECONDS:
            break
        time.sleep(POLL_SECONDS)
    end([p for p in known.values() if p.is_running()] + ([root] if dg.poll() is None else []))
    return 0 if interrupted_at else (dg.returncode or 0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
