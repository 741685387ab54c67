"""The production profile's processes on this machine: `make prod-up`, `prod-down`, `prod-status`.

    python -m penguin_pipeline.prod up       # check the services, then start everything
    python -m penguin_pipeline.prod down     # stop exactly what `up` started
    python -m penguin_pipeline.prod status   # what runs, and whether each service answers
    python -m penguin_pipeline.prod worker   # one more Celery worker, in the foreground

`up` first checks PostgreSQL (PENGUIN_PG_URL; the database is created if missing), RabbitMQ
(PENGUIN_CELERY_BROKER) and Redis (PENGUIN_CELERY_BACKEND): each one that does not answer gets one
line naming it, its URL (password masked) and what to do, and nothing starts. Then it renders
instance/prod/supervisord.conf into `<DAGSTER_HOME>/services/` with one program per process (the
Celery workers, PENGUIN_WORKERS of them on each host; the Dagster daemon; the webserver on
DAGSTER_PORT), starts supervisord on it, and waits until each process answers. The profile has
its own DAGSTER_HOME (PENGUIN_PROD_HOME, default .dagster_home_prod/) with
instance/prod/dagster.yaml linked in.

supervisord owns the processes: it restarts one that dies, stops each with its process group (the
daemon's code server and run processes, a worker's pool process) and logs each to its own file.
`down` is its shutdown, `status` its process list plus a look at whether each process answers.
"""

from __future__ import annotations

import configparser
import hashlib
import io
import os
import random
import shlex
import signal
import socket
import string
import subprocess
import sys
import tempfile
import time
import urllib.request
import xmlrpc.client
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psutil

from . import hosts
from .defs.workers import masked
from .settings import PROJECT_ROOT, Settings, load_settings

BIN = Path(sys.executable).parent
INSTANCE_YAML = PROJECT_ROOT / "instance" / "prod" / "dagster.yaml"
COMPUTE_LOGS_YAML = PROJECT_ROOT / "instance" / "prod" / "compute_logs_s3.yaml"
SUPERVISOR_TEMPLATE = PROJECT_ROOT / "instance" / "prod" / "supervisord.conf"
WORKSPACE = PROJECT_ROOT / "workspace.yaml"
CONNECT_TIMEOUT_SECONDS = 3
# The daemon writes its heartbeats every 30 s (Dagster's DEFAULT_HEARTBEAT_INTERVAL_SECONDS).
HEARTBEAT_FRESH_SECONDS = 90
START_TIMEOUT_SECONDS = 120
# Servers the profile starts on a port of its choosing (moto's S3 stand-in) take one from here up
# to the kernel's range for outgoing connections.
_PORTS_FROM = 20000
_CLOCK_SLACK_SECONDS = 1.0  # heartbeats are stamped by other processes' clocks
# A unix socket's path holds at most 107 bytes on Linux, and supervisord binds a temporary name
# (the path plus ".<pid>") before renaming it.
_MAX_SOCKET_PATH = 90


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


# --- the processes, under supervisord ------------------------------------------------------------


def services_dir(settings: Settings) -> Path:
    """Where supervisord keeps its config, socket, pid file and each process's log."""
    return settings.prod_home / "services"


def socket_path(settings: Settings) -> Path:
    """supervisord's control socket; a deep DAGSTER_HOME (a test's tmp folder) gets one in /tmp,
    named after it, since a unix socket's path is short (_MAX_SOCKET_PATH)."""
    path = services_dir(settings) / "supervisor.sock"
    if len(str(path)) <= _MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(str(path).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"penguin-supervisor-{digest}.sock"


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


def worker_name(settings: Settings, index: int | str, host: str | None = None) -> str:
    return f"{settings.celery_queue}-{index}@{host or socket.gethostname()}"


def worker_command(settings: Settings, index: int | str, host: str | None = None) -> list[str]:
    """One Celery worker process for this deployment's queue, executing one step at a time."""
    return [
        str(BIN / "celery"),
        "--app=penguin_pipeline.celery_worker",
        "worker",
        f"--hostname={worker_name(settings, index, host)}",
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
    """Every process `up` starts, by name (supervisord's program names and log files)."""
    named = forwarder_commands(settings) if settings.hosts == 2 else {}
    # PENGUIN_WORKERS on each host: with two, a lost host's runs are retried on the other's.
    named.update(
        {f"worker-{i}": worker_command(settings, i) for i in range(1, settings.workers + 1)}
    )
    if settings.hosts == 2:
        for i in range(1, settings.workers + 1):
            # The URLs are rewritten for the link inside that process, never written down.
            named[f"worker-h2-{i}"] = [sys.executable, "-m", "penguin_pipeline.hosts", "worker"]
            named[f"worker-h2-{i}"].append(f"h2-{i}")
    named["daemon"] = daemon_command()
    named["webserver"] = webserver_command(settings)
    return named


def forwarder_commands(settings: Settings) -> dict[str, list[str]]:
    """One forwarder per service on 127.0.0.1, on this host's end of the second host's link."""
    host = hosts.second_host(settings)
    named = {}
    for name, url, port in (
        ("postgres", settings.pg_url, 5432),
        ("rabbitmq", settings.celery_broker, 5672),
        ("redis", settings.celery_backend, 6379),
    ):
        parts = urlsplit(url)
        if parts.hostname in ("127.0.0.1", "localhost"):
            port = parts.port or port
            listen, target = f"{host.address(1)}:{port}", f"127.0.0.1:{port}"
            named[f"forward-{name}"] = [sys.executable, "-m", "penguin_pipeline.forward"]
            named[f"forward-{name}"] += [listen, target]
    return named


def link_instance(settings: Settings, bucket: str | None = None) -> None:
    """The profile's DAGSTER_HOME with instance/prod/dagster.yaml linked in; with a `bucket`
    (HOSTS=2) a copy of it instead, with the compute logs on S3 in that bucket."""
    settings.prod_home.mkdir(parents=True, exist_ok=True)
    target = settings.prod_home / "dagster.yaml"
    if bucket is not None:
        target.unlink(missing_ok=True)
        on_s3 = string.Template(COMPUTE_LOGS_YAML.read_text()).substitute(bucket=bucket)
        target.write_text(INSTANCE_YAML.read_text() + on_s3)
        return
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


def supervisor_config(settings: Settings, processes: Mapping[str, list[str]]) -> str:
    """instance/prod/supervisord.conf with the profile's paths, one program per process."""
    folder = services_dir(settings)
    text = string.Template(SUPERVISOR_TEMPLATE.read_text()).substitute(
        services=folder, socket=socket_path(settings)
    )
    config = configparser.ConfigParser(interpolation=None)
    config.read_string(text)
    defaults = dict(config["program-defaults"])
    config.remove_section("program-defaults")
    for priority, (name, argv) in enumerate(processes.items(), start=1):
        config[f"program:{name}"] = {
            # supervisord expands %(...)s in its values: a literal % is written %%.
            "command": shlex.join(argv).replace("%", "%%"),
            "directory": str(PROJECT_ROOT),
            "stdout_logfile": str(folder / f"{name}.log"),
            "priority": str(priority),
            **defaults,
        }
    out = io.StringIO()
    config.write(out)
    return out.getvalue()


def start_supervisor(
    settings: Settings, processes: Mapping[str, list[str]], env: Mapping[str, str]
) -> None:
    """supervisord (in the background, with `env` for every process) running `processes`."""
    folder = services_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "supervisord.conf"
    conf.write_text(supervisor_config(settings, processes))
    done = subprocess.run(
        [str(BIN / "supervisord"), "-c", str(conf)],
        env=dict(env),
        cwd=PROJECT_ROOT,
        capture_output=True,
    )
    if done.returncode != 0:
        raise RuntimeError(f"supervisord did not start: {_one_line_text(done.stderr)}")
    # supervisord forks into the background first and opens its socket after.
    if not _wait(lambda: supervisor(settings) is not None, START_TIMEOUT_SECONDS):
        raise RuntimeError(f"supervisord does not answer on {socket_path(settings)}")


def _one_line_text(data: bytes) -> str:
    return " ".join(data.decode(errors="replace").split()) or "(no output)"


def supervisor(settings: Settings):
    """supervisord's XML-RPC interface (what supervisorctl speaks), or None when none answers."""
    from supervisor.xmlrpc import SupervisorTransport

    transport = SupervisorTransport(None, None, f"unix://{socket_path(settings)}")
    proxy = xmlrpc.client.ServerProxy("http://127.0.0.1", transport)
    try:
        proxy.supervisor.getPID()
        return proxy
    except (OSError, xmlrpc.client.Error):
        return None


@dataclass(frozen=True)
class Program:
    """One process supervisord runs for the profile, as supervisord reports it."""

    name: str
    state: str  # RUNNING, STARTING, BACKOFF, FATAL, EXITED, STOPPED...
    pid: int  # 0 when not running
    log: Path


def programs(settings: Settings) -> list[Program]:
    """What supervisord runs for the profile, in start order; empty when it does not answer."""
    proxy = supervisor(settings)
    if proxy is None:
        return []
    try:
        infos = proxy.supervisor.getAllProcessInfo()
    except (OSError, xmlrpc.client.Error):
        return []
    return [Program(i["name"], i["statename"], i["pid"], Path(i["stdout_logfile"])) for i in infos]


def shutdown(settings: Settings, timeout: float = 60) -> list[str]:
    """Stop every process and supervisord itself; one line each. Also after a crash half-way
    through `up`: a supervisord that started is found by its socket, or else by its pid file."""
    lines = [f"{p.name}: stopped (pid {p.pid})" for p in programs(settings) if p.pid]
    pid = _supervisord_pid(settings)
    proxy = supervisor(settings)
    if proxy is not None:
        try:
            proxy.supervisor.shutdown()
        except (OSError, xmlrpc.client.Error):
            pass  # it stopped answering between the two calls: the pid file still says who it is
    elif pid is not None:
        os.kill(pid, signal.SIGTERM)  # it runs but does not answer: SIGTERM is its shutdown
        lines.append(f"supervisord (pid {pid}) did not answer: stopped it with SIGTERM")
    if pid is not None and not _wait(lambda: not psutil.pid_exists(pid), timeout):
        raise RuntimeError(f"supervisord (pid {pid}) still runs {timeout:.0f} s after shutdown")
    socket_path(settings).unlink(missing_ok=True)
    # After its workers: the second host's namespaces and link, whatever HOSTS says now.
    return lines + [f"removed {what}" for what in hosts.destroy(hosts.second_host(settings))]


def _supervisord_pid(settings: Settings) -> int | None:
    """supervisord's pid from its pid file, if that process is still supervisord."""
    try:
        pid = int((services_dir(settings) / "supervisord.pid").read_text().strip())
        if "supervisord" in " ".join(psutil.Process(pid).cmdline()):
            return pid
    except (OSError, ValueError, psutil.Error):
        pass
    return None


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


def worker_nodes(settings: Settings, names: list[str]) -> dict[str, str]:
    """Celery node name -> program name, for the programs that are workers."""
    nodes = {}
    second = hosts.second_host(settings).hostname
    for name in names:
        if name.startswith("worker-h2-"):
            nodes[worker_name(settings, name.removeprefix("worker-"), second)] = name
        elif name.startswith("worker-"):
            nodes[worker_name(settings, name.removeprefix("worker-"))] = name
    return nodes


# --- the commands --------------------------------------------------------------------------------


def up(
    settings: Settings,
    out=sys.stdout,
    err=sys.stderr,
    base_env: Mapping[str, str] | None = None,
    processes: Mapping[str, list[str]] | None = None,
) -> int:
    """Check the services, then start `processes` (default: commands(settings)) under supervisord
    and wait until each answers. 0: all up; 1: already running, or something did not start (then
    nothing is left running); 2: a service does not answer (nothing was started)."""
    running = programs(settings)
    if running:
        names = ", ".join(f"{p.name} ({p.state.lower()})" for p in running)
        print(f"prod-up: already running: {names}; `make prod-down` first", file=err)
        return 1
    problems = [s for s in services(settings) if s.problem]
    for service in problems:
        print(f"prod-up: {service.line()}", file=err)
    if problems:
        print("prod-up: nothing started", file=err)
        return 2
    env = process_env(settings, base_env)
    processes = commands(settings) if processes is None else processes
    if settings.hosts == 2:
        processes = {**hosts.on_s3(settings, env, free_port()), **processes}
    link_instance(settings, hosts.bucket(env) if settings.hosts == 2 else None)
    since = time.time() - _CLOCK_SLACK_SECONDS
    try:
        shutdown(settings)  # a supervisord left by a crash whose socket no longer answers
        init_instance(settings, env)
        if settings.hosts == 2:
            hidden = [
                settings.data_dir,
                settings.prod_home,
                *hosts.postgres_sockets(settings.pg_url),
            ]
            hosts.create(hosts.second_host(settings), hidden)
        start_supervisor(settings, processes, env)
        problem = wait_until_answering(settings, env, list(processes), since)
        if settings.hosts == 2 and not problem:
            problem = _bucket_made(settings, env)
    except BaseException as exc:
        shutdown(settings)
        if not isinstance(exc, RuntimeError):
            raise
        problem = str(exc)
    if problem:
        print(f"prod-up: {problem}", file=err)
        for line in shutdown(settings):
            print(f"prod-up: {line}", file=err)
        return 1
    print(f"prod-up: Dagster UI at http://127.0.0.1:{settings.dagster_port}", file=out)
    for program in programs(settings):
        print(f"  {program.name:<10} pid {program.pid}", file=out)
    if "s3" in processes:
        print(f"  S3 stand-in (moto, in memory) at {env['AWS_ENDPOINT_URL']}", file=out)
    print(f"  supervisord's config and logs in {services_dir(settings)}", file=out)
    print("  `make prod-status`, `make prod-down`", file=out)
    return 0


def _bucket_made(settings: Settings, env: Mapping[str, str]) -> str | None:
    """None once the stores' bucket exists; else why not, with the stand-in's state and log."""
    try:
        hosts.make_bucket(dict(env))
    except RuntimeError as exc:
        s3 = next((p for p in programs(settings) if p.name == "s3"), None)
        if s3 is None:  # the user's own S3
            return f"{exc} (AWS_ENDPOINT_URL names it, so no stand-in was started)"
        return f"{exc}; s3 is {s3.state}, its log {s3.log} ends:\n{_tail(s3.log)}"
    return None


def wait_until_answering(
    settings: Settings, env: Mapping[str, str], names: list[str], since: float
) -> str | None:
    """None once every program answers; else what did not, with its log's last lines."""
    workers = worker_nodes(settings, names)
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    pending = set(names)
    while pending and time.monotonic() < deadline:
        for program in programs(settings):
            if program.state in ("BACKOFF", "FATAL", "EXITED"):
                return f"{program.name} exited while starting; its log {program.log} ends:\n" + (
                    _tail(program.log)
                )
        asked = [node for node, name in workers.items() if name in pending]
        if asked:
            pending -= {workers[node] for node in workers_answering(settings, asked, 1.0)}
        if "webserver" in pending and webserver_answers(settings) is None:
            pending.discard("webserver")
        # Last, and alone: each look at the instance starts a Python process.
        if pending == {"daemon"} and daemon_answers(settings, env, since) is None:
            pending.discard("daemon")
        # Anything else (a test's own process) answers once supervisord says it is RUNNING.
        pending -= {p.name for p in programs(settings) if p.state == "RUNNING"} - {
            "webserver",
            "daemon",
            *workers.values(),
        }
        if pending:
            time.sleep(1)
    if pending:
        return f"not answering after {START_TIMEOUT_SECONDS} s: {', '.join(sorted(pending))}"
    return None


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds now, below the kernel's range for outgoing
    connections: a port from that range (bind to 0) can be taken, before our server binds it, as
    the local end of any connection, e.g. to PostgreSQL, and the server then never starts."""
    low = _ephemeral_low()
    candidates = random.sample(range(_PORTS_FROM, low), 64) if low > _PORTS_FROM + 64 else [0]
    for port in candidates:
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return sock.getsockname()[1]
    raise RuntimeError(f"no free TCP port on 127.0.0.1 in {_PORTS_FROM}-{low - 1}")


def _ephemeral_low(path: Path = Path("/proc/sys/net/ipv4/ip_local_port_range")) -> int:
    try:
        return int(path.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def down(settings: Settings, out=sys.stdout) -> int:
    lines = shutdown(settings)
    for line in lines or [f"nothing runs under supervisord ({socket_path(settings)})"]:
        print(f"prod-down: {line}", file=out)
    return 0


def status(settings: Settings, out=sys.stdout, base_env=None) -> int:
    env = process_env(settings, base_env)
    print(f"prod-status: DAGSTER_HOME {settings.prod_home}", file=out)
    healthy = True
    for service in services(settings, create_database=False):
        healthy &= service.problem is None
        state = "answers" if service.problem is None else f"DOES NOT ANSWER: {service.problem}"
        print(f"  {service.name:<30} {service.url:<55} {state}", file=out)
        if service.problem:
            print(f"  {'':<30} {service.todo}", file=out)
    running = programs(settings)
    if not running:
        print("  no process of the profile is running (`make prod-up` starts them)", file=out)
        return 1
    print(f"  supervisord {socket_path(settings)}, logs in {services_dir(settings)}", file=out)
    healthy &= _print_hosts(settings, running, out)
    nodes = worker_nodes(settings, [p.name for p in running])
    answering = workers_answering(settings, list(nodes)) if nodes else set()
    by_program = {name: node for node, name in nodes.items()}
    for program in running:
        where, problem = _program_health(settings, env, program, by_program, answering)
        healthy &= problem is None
        state = "answers" if problem is None else f"DOES NOT ANSWER: {problem}"
        label = f"{program.name} (pid {program.pid})" if program.pid else program.name
        print(f"  {label:<30} {where:<55} {state}", file=out)
    return 0 if healthy else 1


def _print_hosts(settings: Settings, running: list[Program], out) -> bool:
    """One line per host with its workers; False when the second host's workers run without it."""
    here = [p.name for p in running if p.name.startswith("worker-") and "-h2-" not in p.name]
    there = [p.name for p in running if p.name.startswith("worker-h2-")]
    listed = ", ".join(here) or "none"
    print(f"  host {socket.gethostname()} (this one): workers {listed}", file=out)
    if not there:
        return True
    host = hosts.second_host(settings)
    ok = hosts.exists(host)
    state = f"netns {host.netns}, {host.address(2)}" if ok else "ITS NAMESPACES ARE GONE"
    print(f"  host {host.hostname} ({state}): workers {', '.join(there)}", file=out)
    return ok


def _program_health(settings, env, program: Program, nodes: dict, answering: set):
    """(where it answers, None or what is wrong) for one program."""
    if program.state != "RUNNING":
        return f"log {program.log}", f"{program.state} under supervisord"
    if program.name == "webserver":
        return f"http://127.0.0.1:{settings.dagster_port}", webserver_answers(settings)
    if program.name == "daemon":
        return "heartbeats in the instance", daemon_answers(settings, env)
    if program.name in nodes:
        node = nodes[program.name]
        return node, None if node in answering else "no answer to a ping through the broker"
    return "supervisord", None


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
