"""The production profile's processes on this machine: `make prod-up`, `prod-down`, `prod-status`.

    python -m penguin_pipeline.prod up       # check the services, then start everything
    python -m penguin_pipeline.prod down     # stop exactly what `up` started
    python -m penguin_pipeline.prod status   # what runs, and whether each service answers
    python -m penguin_pipeline.prod worker   # one more Celery worker, in the foreground

`up` first checks PostgreSQL (PENGUIN_PG_URL; the database is created if missing), RabbitMQ
(PENGUIN_CELERY_BROKER) and Redis (PENGUIN_CELERY_BACKEND): each one that does not answer gets one
line naming it, its URL (password masked) and what to do, and nothing starts. Then it starts the
Celery workers (PENGUIN_WORKERS), the Dagster daemon and the webserver (DAGSTER_PORT) in the
background, each in its own process group, with its log and pid file in one folder,
`<DAGSTER_HOME>/services/`, and waits until each answers. The profile has its own DAGSTER_HOME
(PENGUIN_PROD_HOME, default .dagster_home_prod/) with instance/prod/dagster.yaml linked in.

`down` stops the process group of each pid file whose process is still the one `up` started (a
process created after its pid file was written is someone else's, reusing the pid): SIGTERM, and
SIGKILL for what is left after a grace period. The groups hold what those processes started: the
daemon's code server and its run processes, the workers' pool processes.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil

from .defs.workers import masked
from .settings import PROJECT_ROOT, Settings, load_settings

BIN = Path(sys.executable).parent
INSTANCE_YAML = PROJECT_ROOT / "instance" / "prod" / "dagster.yaml"
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
CONNECT_TIMEOUT_SECONDS = 3
# The daemon writes its heartbeats every 30 s (Dagster's DEFAULT_HEARTBEAT_INTERVAL_SECONDS).
HEARTBEAT_FRESH_SECONDS = 90
START_TIMEOUT_SECONDS = 120
STOP_GRACE_SECONDS = 20
# A process created after its pid file was written is not the one that file names (pid reused).
_CLOCK_SLACK_SECONDS = 1.0


# --- the services the profile needs ------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    name: str
    url: str  # masked
    problem: str | None  # None: it answers
    todo: str

    def line(self) -> str:
        return f"{self.name} at {self.url} does not answer ({self.problem}): {self.todo}"


def check_postgres(url: str, create: bool = True) -> str | None:
    """None when PostgreSQL answers at `url`; creates the database when missing and `create`."""
    import psycopg2

    try:
        psycopg2.connect(libpq_url(url), connect_timeout=CONNECT_TIMEOUT_SECONDS).close()
        return None
    except psycopg2.OperationalError as exc:
        problem = _one_line(exc)
        if "does not exist" in problem and not create:
            return f"{problem}; `make prod-up` creates it"
        if "does not exist" not in problem:
            return problem
    try:
        create_database(url)
        return None
    except psycopg2.Error as exc:
        return f"the database is missing and could not be created: {_one_line(exc)}"


def create_database(url: str) -> None:
    """CREATE DATABASE for the database `url` names (connected to the server's `postgres` db)."""
    import psycopg2
    from psycopg2 import sql

    url = libpq_url(url)
    name = psycopg2.extensions.parse_dsn(url)["dbname"]
    con = psycopg2.connect(url, dbname="postgres", connect_timeout=CONNECT_TIMEOUT_SECONDS)
    try:
        con.autocommit = True
        with con.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,))
            if cur.fetchone() is None:
                cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        con.close()


def check_rabbitmq(url: str) -> str | None:
    from kombu import Connection

    try:
        with Connection(url, connect_timeout=CONNECT_TIMEOUT_SECONDS) as con:
            con.ensure_connection(max_retries=1)
        return None
    except Exception as exc:  # kombu wraps socket and AMQP errors in several types
        return _one_line(exc)


def check_redis(url: str) -> str | None:
    import redis

    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=CONNECT_TIMEOUT_SECONDS)
        client.ping()
        client.close()
        return None
    except (redis.RedisError, OSError) as exc:
        return _one_line(exc)


def services(settings: Settings, create_database: bool = True) -> list[Service]:
    return [
        Service(
            "PostgreSQL (Dagster instance)",
            masked(settings.pg_url),
            check_postgres(settings.pg_url, create_database),
            "start PostgreSQL (`service postgresql start`) or set PENGUIN_PG_URL",
        ),
        Service(
            "RabbitMQ (Celery broker)",
            masked(settings.celery_broker),
            check_rabbitmq(settings.celery_broker),
            "start RabbitMQ (`service rabbitmq-server start`) or set PENGUIN_CELERY_BROKER",
        ),
        Service(
            "Redis (Celery results)",
            masked(settings.celery_backend),
            check_redis(settings.celery_backend),
            "start Redis (`service redis-server start`) or set PENGUIN_CELERY_BACKEND",
        ),
    ]


def dagster_pg_url(url: str) -> str:
    """The URL with psycopg2 named as its driver, as Dagster's storage gets it. dagster-postgres
    installs psycopg2, but SQLAlchemy 2.1 reads a bare postgresql:// URL as psycopg 3 (not
    installed: "No module named 'psycopg'"); and psycopg 3 closes a connection in the `with conn:`
    that dagster-postgres uses to set the webserver's statement timeout."""
    scheme, sep, rest = url.partition("://")
    return f"postgresql+psycopg2://{rest}" if sep and scheme in ("postgresql", "postgres") else url


def libpq_url(url: str) -> str:
    """The URL as libpq (psycopg2.connect) takes it: without SQLAlchemy's +driver."""
    scheme, sep, rest = url.partition("://")
    return f"{scheme.split('+')[0]}://{rest}" if sep else url


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


# --- the processes -------------------------------------------------------------------------------


def services_dir(settings: Settings) -> Path:
    """Where `up` keeps each process's log and pid file."""
    return settings.prod_home / "services"


def process_env(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of every process of the profile: the caller's, plus the profile's settings
    spelled out so that the daemon, the webserver, the code servers, the run processes and the
    workers all agree (the instance yaml reads PENGUIN_PG_URL)."""
    env = dict(os.environ if base is None else base)
    env.update(
        DAGSTER_HOME=str(settings.prod_home),
        PENGUIN_PROFILE="prod",
        PENGUIN_PG_URL=dagster_pg_url(settings.pg_url),
        PENGUIN_CELERY_BROKER=settings.celery_broker,
        PENGUIN_CELERY_BACKEND=settings.celery_backend,
        PENGUIN_CELERY_QUEUE=settings.celery_queue,
        PYTHONUNBUFFERED="1",
    )
    return env


def worker_name(settings: Settings, index: int | str) -> str:
    return f"{settings.celery_queue}-{index}@{socket.gethostname()}"


def worker_command(settings: Settings, index: int | str) -> list[str]:
    """One Celery worker process for this deployment's queue, executing one step at a time."""
    return [
        str(BIN / "celery"),
        "--app=penguin_pipeline.celery_worker",
        "worker",
        f"--hostname={worker_name(settings, index)}",
        f"--queues={settings.celery_queue}",
        # A pool of one process: the worker's main process answers pings and reports a pool
        # process that dies (WorkerLostError) while that one executes the step.
        "--pool=prefork",
        "--concurrency=1",
        "--prefetch-multiplier=1",
        "--without-gossip",
        "--without-mingle",
        "--loglevel=INFO",
    ]


def daemon_command() -> list[str]:
    return [str(BIN / "dagster-daemon"), "run", "-w", str(WORKSPACE)]


def webserver_command(settings: Settings) -> list[str]:
    return [
        str(BIN / "dagster-webserver"),
        "-h",
        "127.0.0.1",
        "-p",
        str(settings.dagster_port),
        "-w",
        str(WORKSPACE),
    ]


def commands(settings: Settings) -> dict[str, list[str]]:
    """Every process `up` starts, by name (the names of the log and pid files)."""
    named = {f"worker-{i}": worker_command(settings, i) for i in range(1, settings.workers + 1)}
    named["daemon"] = daemon_command()
    named["webserver"] = webserver_command(settings)
    return named


def link_instance(settings: Settings) -> None:
    """The profile's DAGSTER_HOME with instance/prod/dagster.yaml linked in."""
    settings.prod_home.mkdir(parents=True, exist_ok=True)
    target = settings.prod_home / "dagster.yaml"
    if target.is_symlink() or target.exists():
        if target.resolve() == INSTANCE_YAML.resolve():
            return
        target.unlink()
    target.symlink_to(INSTANCE_YAML)


def init_instance(settings: Settings, env: Mapping[str, str]) -> None:
    """Create or migrate the instance's tables once, before the daemon and the webserver start
    together (both would create them at once)."""
    code = "import dagster; dagster.DagsterInstance.get().dispose()"
    done = subprocess.run(
        [sys.executable, "-c", code], env=dict(env), cwd=PROJECT_ROOT, capture_output=True
    )
    if done.returncode != 0:
        raise RuntimeError(
            "creating the Dagster instance's tables in PostgreSQL failed:\n"
            + done.stderr.decode(errors="replace")[-2000:]
        )


@dataclass(frozen=True)
class Recorded:
    """A process `up` started, as its pid file says."""

    name: str
    pid_file: Path

    @property
    def log(self) -> Path:
        return self.pid_file.with_suffix(".log")

    @property
    def pid(self) -> int | None:
        try:
            return int(self.pid_file.read_text().strip())
        except (OSError, ValueError):
            return None

    def process(self) -> psutil.Process | None:
        """The process, if it is still the one this pid file was written for."""
        pid = self.pid
        if pid is None:
            return None
        try:
            process = psutil.Process(pid)
            if process.status() == psutil.STATUS_ZOMBIE:
                return None
            if process.create_time() > self.pid_file.stat().st_mtime + _CLOCK_SLACK_SECONDS:
                return None
            return process
        except (psutil.NoSuchProcess, OSError):
            return None


def recorded(settings: Settings) -> list[Recorded]:
    folder = services_dir(settings)
    order = {name: i for i, name in enumerate(commands(settings))}
    found = [Recorded(p.stem, p) for p in sorted(folder.glob("*.pid"))] if folder.is_dir() else []
    return sorted(found, key=lambda r: (order.get(r.name, len(order)), r.name))


def start(name: str, argv: list[str], env: Mapping[str, str], folder: Path) -> Recorded:
    """Start one process in the background, in its own process group, logging to <name>.log."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / f"{name}.log", "ab") as log:
        log.write(
            f"\n--- {time.strftime('%Y-%m-%d %H:%M:%S')} started: {' '.join(argv)}\n".encode()
        )
        log.flush()
        process = subprocess.Popen(
            argv,
            env=dict(env),
            cwd=PROJECT_ROOT,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    pid_file = folder / f"{name}.pid"
    pid_file.write_text(f"{process.pid}\n")
    return Recorded(name, pid_file)


def stop(entries: list[Recorded], grace: float = STOP_GRACE_SECONDS) -> list[str]:
    """Stop the process group of each entry still running; remove every pid file. One line each."""
    lines, groups = [], {}
    for entry in entries:
        process = entry.process()
        if process is None:
            lines.append(f"{entry.name}: not running")
        else:
            groups[entry.name] = process.pid
            _signal_group(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and any(_group_alive(g) for g in groups.values()):
        time.sleep(0.2)
    for name, group in groups.items():
        forced = _group_alive(group)
        if forced:
            _signal_group(group, signal.SIGKILL)
            _wait(lambda g=group: not _group_alive(g), 10)
        how = f", killed after {grace:.0f} s" if forced else ""
        lines.append(f"{name}: stopped (pid {group}{how})")
    for entry in entries:
        entry.pid_file.unlink(missing_ok=True)
    return lines


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        pass


def _group_alive(pgid: int) -> bool:
    """Any process left in the group (zombies, already dead and only unreaped, do not count)."""
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False


def _wait(predicate: Callable[[], object], timeout: float, interval: float = 0.3):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() >= deadline:
            return value
        time.sleep(interval)


# --- does each process answer? -------------------------------------------------------------------


def webserver_answers(settings: Settings) -> str | None:
    url = f"http://127.0.0.1:{settings.dagster_port}/server_info"
    try:
        with urllib.request.urlopen(url, timeout=CONNECT_TIMEOUT_SECONDS) as response:
            return None if response.status == 200 else f"HTTP {response.status}"
    except OSError as exc:
        return _one_line(exc)


def workers_answering(settings: Settings, names: list[str], timeout: float = 2.0) -> set[str]:
    """The worker names among `names` that answer a ping through the broker."""
    from celery import Celery

    app = Celery(broker=settings.celery_broker)
    try:
        replies = app.control.ping(destination=names, timeout=timeout) or []
    except Exception:  # the broker itself does not answer: no worker can
        return set()
    finally:
        app.close()
    return {name for reply in replies for name in reply}


def daemon_answers(settings: Settings, env: Mapping[str, str], since: float = 0.0) -> str | None:
    """None when every daemon of the instance has beaten since `since` (epoch seconds) and within
    the last HEARTBEAT_FRESH_SECONDS; else which have not."""
    code = (
        "import sys, time, dagster\n"
        "with dagster.DagsterInstance.get() as instance:\n"
        "    beats = instance.get_daemon_heartbeats()\n"
        f"    oldest = max({since!r}, time.time() - {HEARTBEAT_FRESH_SECONDS})\n"
        "    late = sorted(t for t in instance.get_required_daemon_types()\n"
        "                  if t not in beats or beats[t].timestamp < oldest)\n"
        "print(' '.join(late))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=dict(env), cwd=PROJECT_ROOT, capture_output=True
    )
    if done.returncode != 0:
        lines = done.stderr.decode(errors="replace").strip().splitlines()
        return f"cannot read the instance: {lines[-1] if lines else '?'}"
    late = done.stdout.decode().strip()
    return f"no recent heartbeat from {late}" if late else None


# --- the commands --------------------------------------------------------------------------------


@contextmanager
def _stopping_on_failure(started: list[Recorded]) -> Iterator[None]:
    try:
        yield
    except BaseException:
        stop(started, grace=10)
        raise


def up(
    settings: Settings,
    out=sys.stdout,
    err=sys.stderr,
    base_env: Mapping[str, str] | None = None,
    processes: Mapping[str, list[str]] | None = None,
) -> int:
    """Check the services, then start `processes` (default: commands(settings)) and wait until
    each answers. 0: all up; 1: already running, or something did not start (then nothing is
    left running); 2: a service does not answer (nothing was started)."""
    running = [r for r in recorded(settings) if r.process() is not None]
    if running:
        names = ", ".join(f"{r.name} (pid {r.pid})" for r in running)
        print(f"prod-up: already running: {names}; `make prod-down` first", file=err)
        return 1
    problems = [s for s in services(settings) if s.problem]
    for service in problems:
        print(f"prod-up: {service.line()}", file=err)
    if problems:
        print("prod-up: nothing started", file=err)
        return 2
    env = process_env(settings, base_env)
    link_instance(settings)
    folder = services_dir(settings)
    for stale in folder.glob("*.pid") if folder.is_dir() else []:
        stale.unlink()
    try:
        init_instance(settings, env)
    except RuntimeError as exc:
        print(f"prod-up: {exc}", file=err)
        return 1
    started: list[Recorded] = []
    with _stopping_on_failure(started):
        for name, argv in (commands(settings) if processes is None else processes).items():
            started.append(start(name, argv, env, folder))
        problem = wait_until_answering(settings, env, started)
    if problem:
        print(f"prod-up: {problem}", file=err)
        for line in stop(started, grace=10):
            print(f"prod-up: {line}", file=err)
        return 1
    print(f"prod-up: Dagster UI at http://127.0.0.1:{settings.dagster_port}", file=out)
    for entry in started:
        print(f"  {entry.name:<10} pid {entry.pid}", file=out)
    print(f"  logs and pid files in {folder}; `make prod-status`, `make prod-down`", file=out)
    return 0


def wait_until_answering(
    settings: Settings, env: Mapping[str, str], started: list[Recorded]
) -> str | None:
    """None once every started process answers; else what did not, with its log's last lines."""
    workers = {
        worker_name(settings, e.name.removeprefix("worker-")): e.name
        for e in started
        if e.name.startswith("worker-")
    }
    since = min(entry.pid_file.stat().st_mtime for entry in started) - _CLOCK_SLACK_SECONDS
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    pending = {entry.name for entry in started}
    while pending and time.monotonic() < deadline:
        for entry in started:
            if entry.process() is None:
                return f"{entry.name} exited while starting; its log {entry.log} ends:\n" + _tail(
                    entry.log
                )
        asked = [node for node, name in workers.items() if name in pending]
        if asked:
            pending -= {workers[node] for node in workers_answering(settings, asked, 1.0)}
        if "webserver" in pending and webserver_answers(settings) is None:
            pending.discard("webserver")
        # Last, and alone: each look at the instance starts a Python process.
        if pending == {"daemon"} and daemon_answers(settings, env, since) is None:
            pending.discard("daemon")
        if pending:
            time.sleep(1)
    if pending:
        return f"not answering after {START_TIMEOUT_SECONDS} s: {', '.join(sorted(pending))}"
    return None


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def down(settings: Settings, out=sys.stdout) -> int:
    entries = recorded(settings)
    if not entries:
        print(f"prod-down: nothing recorded in {services_dir(settings)}", file=out)
        return 0
    for line in stop(entries):
        print(f"prod-down: {line}", file=out)
    return 0


def status(settings: Settings, out=sys.stdout, base_env=None) -> int:
    env = process_env(settings, base_env)
    print(
        f"prod-status: DAGSTER_HOME {settings.prod_home}, logs {services_dir(settings)}", file=out
    )
    healthy = True
    for service in services(settings, create_database=False):
        healthy &= service.problem is None
        state = "answers" if service.problem is None else f"DOES NOT ANSWER: {service.problem}"
        print(f"  {service.name:<30} {service.url:<55} {state}", file=out)
        if service.problem:
            print(f"  {'':<30} {service.todo}", file=out)
    entries = recorded(settings)
    if not entries:
        print("  no process of the profile is running (`make prod-up` starts them)", file=out)
        return 1
    names = {
        e.name: worker_name(settings, e.name.removeprefix("worker-"))
        for e in entries
        if e.name.startswith("worker-")
    }
    answering = workers_answering(settings, list(names.values())) if names else set()
    for entry in entries:
        process = entry.process()
        if process is None:
            healthy = False
            print(
                f"  {entry.name:<30} {'pid ' + str(entry.pid):<55} NOT RUNNING (log {entry.log})",
                file=out,
            )
            continue
        if entry.name == "webserver":
            where, problem = (
                f"http://127.0.0.1:{settings.dagster_port}",
                webserver_answers(settings),
            )
        elif entry.name == "daemon":
            where, problem = "heartbeats in the instance", daemon_answers(settings, env)
        else:
            where = names[entry.name]
            problem = None if where in answering else "no answer to a ping through the broker"
        healthy &= problem is None
        state = "answers" if problem is None else f"RUNNING, DOES NOT ANSWER: {problem}"
        print(
            f"  {entry.name + ' (pid ' + str(process.pid) + ')':<30} {where:<55} {state}", file=out
        )
    return 0 if healthy else 1


def worker(settings: Settings) -> int:
    """One more worker, in the foreground (on another host: the same code and environment)."""
    argv = worker_command(settings, f"fg{os.getpid()}")
    os.chdir(PROJECT_ROOT)
    os.execve(argv[0], argv, process_env(settings))
    return 1  # not reached: execve replaces this process


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    commands_ = {"up": up, "down": down, "status": status, "worker": worker}
    if len(argv) != 1 or argv[0] not in commands_:
        print(f"usage: python -m penguin_pipeline.prod {'|'.join(commands_)}", file=sys.stderr)
        return 2
    return commands_[argv[0]](load_settings())


if __name__ == "__main__":
    sys.exit(main())
