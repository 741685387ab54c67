"""Steps on Celery workers: the production profile's executor and its workers' Celery app.

The profile (PENGUIN_PROFILE=prod, README "Production profile") runs every step of a run on a
Celery worker: the run's own process only orchestrates. It is dagster-celery's executor, with the
settings read from the environment (PENGUIN_CELERY_BROKER, _BACKEND, _QUEUE) where the run and the
workers run, so no URL or password is ever part of a job's snapshot or a run's config, plus what
dagster-celery leaves out:

- **A worker that dies mid-step is noticed.** dagster-celery waits for each task's result forever;
  a worker killed with SIGKILL (the out-of-memory killer, a lost host) never sends one, and the run
  hung. Each worker keeps a heartbeat key in the result backend (Redis) while it executes a step,
  refreshed every HEARTBEAT_SECONDS and expiring after LOST_AFTER_SECONDS; a started step whose key
  is gone fails with a message naming the worker. The run fails, its pool slots are freed, and run
  retries (instance/prod/dagster.yaml) re-run it on the workers that remain.
- **A step whose run has ended stops.** When the run's own process dies (run monitoring marks the
  run failed and frees its slots) or the run is terminated (dagster-celery revokes only queued
  steps), a step still executing on a worker would write the warehouse beside the retry, outside
  the `duckdb` pool. The worker looks at its step's run at every heartbeat and ends the step's
  process when the run has ended.
- **An unreachable broker or result backend is named.** kombu's "[Errno 111] Connection refused"
  becomes "the Celery broker (RabbitMQ) at amqp://... does not answer: ...", with what to do.
- **Each deployment has its own queue** (PENGUIN_CELERY_QUEUE): two deployments on one broker (a
  test beside `make prod-up`) never run each other's steps with the wrong data folder.

Pools hold across workers unchanged: dagster-celery's loop claims a step's pool slot in the run's
process before it sends the step to the queue (InstanceConcurrencyContext), against the instance's
Postgres, so the `duckdb` pool's limit of 1 holds across every run and worker.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import redis
from celery import signals, states
from dagster._core.execution.retries import RetryMode
from dagster._grpc.types import ExecuteStepArgs
from dagster._serdes import unpack_value
from dagster_celery import core_execution_loop
from dagster_celery.config import TASK_EXECUTE_PLAN_NAME
from dagster_celery.executor import CeleryExecutor, _submit_task
from dagster_celery.make_app import make_app
from dagster_celery.tasks import create_task
from kombu.exceptions import OperationalError

from ..settings import Settings, load_settings

HEARTBEAT_SECONDS = 2.0
POLL_SECONDS = 0.2  # how often the run's process looks at its steps' results (Dagster's: 1 s)
# Long enough for a worker starved of CPU (two cores, eight runs) to beat in time; short enough
# that a run with a dead worker fails within half a minute.
LOST_AFTER_SECONDS = 20
BROKER_HEARTBEAT_SECONDS = 10  # the workers' AMQP heartbeat (worker_app)
_BEAT_KEY = "penguin:celery:heartbeat:{task_id}"


def masked(url: str) -> str:
    """The URL with its password replaced by ***, for messages and logs."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    host = parts.hostname or ""
    if parts.port:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))


def _executor_args(settings: Settings) -> dict:
    if urlsplit(settings.celery_backend).scheme not in ("redis", "rediss"):
        raise dg.DagsterInvalidConfigError(
            f"PENGUIN_CELERY_BACKEND={masked(settings.celery_backend)}: the production profile "
            "keeps its workers' heartbeats in the result backend and needs Redis (redis://...)",
            [],
            None,
        )
    return dict(
        retries=RetryMode.ENABLED,
        broker=settings.celery_broker,
        backend=settings.celery_backend,
        config_source={
            "task_default_queue": settings.celery_queue,
            # One step at a time per worker process, taken when it starts, not queued behind it.
            "worker_prefetch_multiplier": 1,
            "task_track_started": True,
            "result_expires": 24 * 3600,
            "broker_connection_retry_on_startup": True,
            # Publishing a step: a refused connection is retried briefly, then the run fails
            # naming the broker.
            "task_publish_retry_policy": {
                "max_retries": 3,
                "interval_start": 0,
                "interval_step": 0.5,
                "interval_max": 1,
            },
            "redis_socket_connect_timeout": 5,
            "redis_socket_timeout": 30,
        },
    )


def app_args(settings: Settings) -> dict:
    """The Celery app's arguments, the same for the executor (sender) and the workers."""
    return CeleryExecutor(**_executor_args(settings)).app_args()


class BrokerUnreachable(Exception):
    pass


class ResultBackendUnreachable(Exception):
    pass


class WorkerLost(Exception):
    pass


def broker_problem(settings: Settings, exc: Exception) -> str:
    return (
        f"the Celery broker (RabbitMQ) at {masked(settings.celery_broker)} does not answer: {exc}. "
        "Start RabbitMQ or point PENGUIN_CELERY_BROKER at it (`make prod-status` checks every "
        "service). The step was not sent, so none of it ran."
    )


def backend_problem(settings: Settings, exc: Exception) -> str:
    return (
        f"the Celery result backend (Redis) at {masked(settings.celery_backend)} does not answer: "
        f"{exc}. Start Redis or point PENGUIN_CELERY_BACKEND at it (`make prod-status`)."
    )


class WatchedResult:
    """A step's Celery result, as dagster-celery's loop polls it (ready, get, revoke), that also
    turns ready when the worker executing the step stopped beating: get() then raises WorkerLost."""

    def __init__(self, result, step_key: str, beats: redis.Redis, settings: Settings):
        self._result = result
        self._step_key = step_key
        self._beats = beats
        self._settings = settings
        self._lost: str | None = None

    def ready(self) -> bool:
        try:
            if self._result.ready():
                return True
            if self._result.state != states.STARTED:
                return False  # still queued: waiting for a free worker is not a fault
            if self._beats.exists(_BEAT_KEY.format(task_id=self._result.id)):
                return False
            if self._result.ready():  # finished between the two looks (its key is deleted then)
                return True
            info = self._result.info if isinstance(self._result.info, dict) else {}
        except (redis.RedisError, OSError) as exc:
            raise ResultBackendUnreachable(backend_problem(self._settings, exc)) from None
        self._lost = (
            f"step {self._step_key}: its Celery worker {info.get('hostname', '?')} (pid "
            f"{info.get('pid', '?')}) stopped reporting for {LOST_AFTER_SECONDS} s while executing "
            "it (killed, out of memory, or its host is gone); what it had not committed is rolled "
            "back. Run retries re-run the run on the workers that remain."
        )
        return True

    def get(self):
        if self._lost:
            raise WorkerLost(self._lost)
        return self._result.get()

    def revoke(self):
        return self._result.revoke()


class WatchedCeleryExecutor(CeleryExecutor):
    def __init__(self, settings: Settings):
        self.settings = settings
        super().__init__(**_executor_args(settings))
        self._beats = redis.Redis.from_url(settings.celery_backend, socket_connect_timeout=5)

    def execute(self, plan_context, execution_plan):
        # The loop sleeps TICK_SECONDS between its looks at the steps' results, read at each
        # iteration; Dagster's 1 s added ~0.5 s to every step (measured with `make bench-prod`).
        core_execution_loop.TICK_SECONDS = POLL_SECONDS
        return core_execution_loop.core_celery_execution_loop(
            plan_context, execution_plan, self._submit
        )

    def _submit(self, app, plan_context, step, queue, priority, known_state):
        try:
            result = _submit_task(app, plan_context, step, queue, priority, known_state)
        except OperationalError as exc:
            raise BrokerUnreachable(broker_problem(self.settings, exc)) from None
        return WatchedResult(result, step.key, self._beats, self.settings)


@dg.executor(
    name="celery_workers",
    config_schema={},
    requirements=dg.multiple_process_executor_requirements(),
)
def celery_workers_executor(_init_context) -> WatchedCeleryExecutor:
    """Every step on a Celery worker of this deployment's queue (README, "Production profile")."""
    return WatchedCeleryExecutor(load_settings())


# --- the workers' side -------------------------------------------------------------------------


def worker_app(settings: Settings):
    """The Celery app `celery -A penguin_pipeline.celery_worker worker` serves: dagster-celery's
    step task on this deployment's queue, with a heartbeat while a step executes."""
    app = make_app(app_args(settings))
    # Celery replaces sys.stdout/stderr by a logger that has no file descriptor, and Dagster
    # captures a step's own output (its compute logs, the UI's stdout/stderr) by redirecting the
    # descriptors: with Celery's, every step's captured log was empty.
    app.conf.worker_redirect_stdouts = False
    # A worker's host that dies sends no goodbye: RabbitMQ keeps its connection, with a step it had
    # already taken from the queue (one at a time, acknowledged when it starts, so one more waits
    # in its prefetch), until the AMQP heartbeats stop. Celery's 120 s held a lost host's retried
    # step that long; at 10 s RabbitMQ gives it back to the queue within about 20 s.
    app.conf.broker_heartbeat = BROKER_HEARTBEAT_SECONDS
    create_task(app, track_started=True)
    heart = _Heart(settings.celery_backend)
    signals.task_prerun.connect(heart.start, weak=False)
    signals.task_postrun.connect(heart.stop, weak=False)
    return app


class _Heart:
    """While this process executes a step (one at a time per process): keeps `_BEAT_KEY` alive, and
    stops the step when its run has ended without it.

    A run ends without its steps when its own process dies (run monitoring marks it failed) or
    someone terminates it (dagster-celery revokes its tasks, which stops only queued ones). A step
    still executing on a worker then would write the warehouse beside the run's retry, outside the
    `duckdb` pool, whose slots are freed with the run. Each beat looks at the run's status; once
    it has ended, this process ends itself as a kill would (its DuckDB transaction is never
    committed), and the worker's main process replaces it.
    """

    def __init__(self, backend_url: str):
        self._backend_url = backend_url
        self._client: redis.Redis | None = None
        self._pid = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _redis(self) -> redis.Redis:
        if self._client is None or self._pid != os.getpid():  # a forked pool process: its own
            self._client = redis.Redis.from_url(self._backend_url, socket_connect_timeout=5)
            self._pid = os.getpid()
        return self._client

    def start(self, sender=None, task_id=None, task=None, kwargs=None, **_):
        if task is None or task.name != TASK_EXECUTE_PLAN_NAME:
            return
        key = _BEAT_KEY.format(task_id=task_id)
        client = self._redis()
        client.set(key, f"pid {os.getpid()}", ex=LOST_AFTER_SECONDS)
        run_ended = _run_ended_check((kwargs or {}).get("execute_step_args_packed"))
        self._stop = stop = threading.Event()

        def beat():
            while not stop.wait(HEARTBEAT_SECONDS):
                try:
                    client.set(key, f"pid {os.getpid()}", ex=LOST_AFTER_SECONDS)
                except redis.RedisError:
                    pass  # a blip: the next beat retries; a long outage fails the step
                ended = run_ended()
                if ended and not stop.is_set():
                    print(f"penguin_pipeline: {ended}; stopping its step here", flush=True)
                    os.kill(os.getpid(), signal.SIGKILL)
            client.delete(key)

        self._thread = threading.Thread(target=beat, name=f"heartbeat-{task_id}", daemon=True)
        self._thread.start()

    def stop(self, sender=None, task_id=None, task=None, **_):
        if task is None or task.name != TASK_EXECUTE_PLAN_NAME or self._thread is None:
            return
        self._stop.set()
        self._thread.join(timeout=10)
        self._thread = None


def _run_ended_check(packed) -> Callable[[], str | None]:
    """A function that says whether the step's run has ended (None while it has not)."""
    if not packed:
        return lambda: None
    args = unpack_value(packed, as_type=ExecuteStepArgs)
    instance: dg.DagsterInstance | None = None

    def ended() -> str | None:
        nonlocal instance
        try:
            instance = instance or dg.DagsterInstance.from_ref(args.instance_ref)
            run = instance.get_run_by_id(args.run_id)
        except Exception:  # the instance unreachable for a moment: ask again at the next beat
            return None
        if run is None or not run.is_finished:
            return None
        return f"run {args.run_id} ended ({run.status.value}) while its step executed"

    return ended
