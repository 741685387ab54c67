"""A simulated second host for the production profile's Celery workers (`make prod-up HOSTS=2`).

The host is three Linux namespaces, made once by `create` and entered by each worker (nsenter):

- network: its own namespace with one veth pair to this host, 10.231.X.2/30 inside and
  10.231.X.1/30 on this host's end (X from the profile's DAGSTER_HOME, so a test beside
  `make prod-up` gets its own link). It reaches nothing but that link;
- mount: this host's data folder, the profile's DAGSTER_HOME and the folder of PostgreSQL's unix
  socket are covered by empty tmpfs mounts, so a worker sees none of their files and reaches
  PostgreSQL only over the link (the code and the virtualenv stay visible, as an image carries
  them);
- UTS: its own hostname, which the workers' names and their steps' events carry.

PostgreSQL, RabbitMQ and Redis listen on 127.0.0.1 here; the workers reach them at 10.231.X.1
through forwarders (penguin_pipeline/forward.py) that supervisord runs beside the other programs.
`destroy` removes the namespaces and the link; it is safe to call when nothing exists, and after
a crash half-way through `create`.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from .settings import PROJECT_ROOT, Settings

RUN_DIR = Path("/run/penguin_pipeline")
# The /30 links come out of 10.231.0.0/16, an address block used only for these namespaces.
_LINKS = 2**14


@dataclass(frozen=True)
class Host:
    """The second host of one deployment (one DAGSTER_HOME): its names and addresses."""

    tag: str

    @property
    def netns(self) -> str:
        return f"penguin-{self.tag}"

    @property
    def hostname(self) -> str:
        return f"penguin-h2-{self.tag}"

    @property
    def outer_veth(self) -> str:  # interface names hold at most 15 characters
        return f"pg{self.tag}o"

    @property
    def inner_veth(self) -> str:
        return f"pg{self.tag}i"

    @property
    def folder(self) -> Path:
        """Where the mount and UTS namespaces are kept (bind-mounted files, as ip netns does)."""
        return RUN_DIR / self.tag

    def address(self, end: int) -> str:
        """10.231.X.<end>: 1 is this host's end of the link, 2 the second host's."""
        base = (int(self.tag, 16) % _LINKS) * 4
        return f"10.231.{base // 256}.{base % 256 + end}"


def second_host(settings: Settings) -> Host:
    return Host(hashlib.sha256(str(settings.prod_home).encode()).hexdigest()[:8])


def exists(host: Host) -> bool:
    return Path(f"/run/netns/{host.netns}").exists()


def create(host: Host, hidden: list[Path]) -> None:
    """The namespaces, the link and the hostname; `hidden` folders covered (empty) inside."""
    destroy(host)  # what a crashed `prod-up` may have left
    try:
        _link(host)
        _mount_and_uts(host, hidden)
    except BaseException:
        destroy(host)
        raise


def _link(host: Host) -> None:
    outer, inner, ns = host.outer_veth, host.inner_veth, host.netns
    _run("ip", "netns", "add", ns)
    _run("ip", "link", "add", outer, "type", "veth", "peer", "name", inner, "netns", ns)
    _run("ip", "addr", "add", f"{host.address(1)}/30", "dev", outer)
    _run("ip", "link", "set", outer, "up")
    _run("ip", "-n", ns, "addr", "add", f"{host.address(2)}/30", "dev", inner)
    _run("ip", "-n", ns, "link", "set", inner, "up")
    _run("ip", "-n", ns, "link", "set", "lo", "up")


def _mount_and_uts(host: Host, hidden: list[Path]) -> None:
    # A namespace kept by a bind mount needs a private mount to live on (ip netns does the same).
    host.folder.mkdir(parents=True, exist_ok=True)
    _run("mount", "--bind", str(host.folder), str(host.folder))
    _run("mount", "--make-private", str(host.folder))
    for name in ("mnt", "uts"):
        (host.folder / name).touch()
    for folder in hidden:
        folder.mkdir(parents=True, exist_ok=True)  # a mount point must exist
    covers = " && ".join(f"mount -t tmpfs -o size=256m,mode=0755 tmpfs {_q(f)}" for f in hidden)
    script = f"hostname {host.hostname}" + (f" && {covers}" if covers else "")
    _run(
        "unshare",
        f"--mount={host.folder / 'mnt'}",
        f"--uts={host.folder / 'uts'}",
        "--propagation",
        "private",
        "sh",
        "-c",
        script,
    )


def destroy(host: Host) -> list[str]:
    """Remove the namespaces and the link; one line per thing removed."""
    removed = []
    for name in ("mnt", "uts"):
        path = host.folder / name
        if _quiet("umount", str(path)):
            removed.append(f"{name} namespace of {host.hostname}")
    _quiet("umount", str(host.folder))
    if host.folder.exists():
        for name in ("mnt", "uts"):
            (host.folder / name).unlink(missing_ok=True)
        host.folder.rmdir()
    try:
        RUN_DIR.rmdir()  # when no other deployment's host is kept there
    except OSError:
        pass
    if _quiet("ip", "netns", "del", host.netns):
        removed.append(f"network namespace {host.netns}")
    # The pair goes with the namespace; a link left from a crash before the move is removed here.
    if _quiet("ip", "link", "del", host.outer_veth):
        removed.append(f"link {host.outer_veth}")
    return removed


def postgres_sockets(pg_url: str) -> list[Path]:
    """The folders of this host's PostgreSQL unix sockets, when the profile's PostgreSQL is on this
    host: the second host must not see them (it reaches PostgreSQL over its link only). Abstract
    sockets ('@...') live in the network namespace, which the second host does not share."""
    from . import prod

    if urlsplit(pg_url).hostname not in ("127.0.0.1", "localhost"):
        return []
    import psycopg2

    con = psycopg2.connect(prod.libpq_url(pg_url), connect_timeout=prod.CONNECT_TIMEOUT_SECONDS)
    try:
        with con.cursor() as cur:
            cur.execute("SHOW unix_socket_directories")
            folders = cur.fetchone()[0]
    finally:
        con.close()
    paths = [Path(f.strip()) for f in folders.split(",") if f.strip()]
    return [p for p in paths if not str(p).startswith("@") and p.is_dir()]


def enter_command(host: Host, argv: list[str]) -> list[str]:
    """`argv` run on the second host: inside its network, mount and UTS namespaces."""
    return [
        "nsenter",
        f"--net=/run/netns/{host.netns}",
        f"--mount={host.folder / 'mnt'}",
        f"--uts={host.folder / 'uts'}",
        f"--wd={PROJECT_ROOT}",
        "--",
        *argv,
    ]


def across_link(url: str, host: Host) -> str:
    """The URL as the second host reaches it: 127.0.0.1/localhost becomes this host's end of the
    link, where a forwarder listens on the same port."""
    parts = urlsplit(url)
    if parts.hostname not in ("127.0.0.1", "localhost"):
        return url  # a service on another machine: reached as it is
    netloc = parts.netloc.rsplit("@", 1)
    hostport = netloc[-1].replace(parts.hostname, host.address(1), 1)
    return urlunsplit(parts._replace(netloc="@".join([*netloc[:-1], hostport])))


# --- storage the second host reaches: S3 and the lake ---------------------------------------------

BUCKET = "penguin-pipeline"
BUCKET_WAIT_SECONDS = 30
# Where each store goes on S3 unless its variable says otherwise.
_ON_S3 = {
    "PENGUIN_LANDING": "raw",
    "PENGUIN_BOARD": "board",
    "PENGUIN_REPORTS": "reports",
    "PENGUIN_QUARANTINE": "quarantine",
    "PENGUIN_LAKE_DATA": "lake",
}
# moto's stand-in takes any credentials; a real S3 gets its own from the environment.
_STAND_IN_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "penguin-stand-in",
    "AWS_SECRET_ACCESS_KEY": "penguin-stand-in",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


def on_s3(settings: Settings, env: dict[str, str], s3_port: int) -> dict[str, list[str]]:
    """Move every store to S3 and the warehouse to a lake, in `env` (what the profile's processes
    get), as the second host sees no disk of this one. Without AWS_ENDPOINT_URL the stand-in is
    moto's server on 127.0.0.1:`s3_port`; returns the programs to run for it (the server, and the
    forwarder the second host reaches it through)."""
    from . import prod

    programs = {}
    if not env.get("AWS_ENDPOINT_URL"):
        env["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{s3_port}"
        for name, value in _STAND_IN_CREDENTIALS.items():
            env.setdefault(name, value)
        bin_dir = Path(sys.executable).parent
        programs["s3"] = [str(bin_dir / "moto_server"), "-H", "127.0.0.1", "-p", str(s3_port)]
    for name, prefix in _ON_S3.items():
        if not env.get(name):
            env[name] = f"s3://{bucket(env)}/{prefix}"
    if not env.get("PENGUIN_WAREHOUSE"):
        catalog = settings.pg_url.rsplit("/", 1)[0] + "/" + _lake_database(settings.pg_url)
        prod.create_database(catalog)
        env["PENGUIN_WAREHOUSE"] = "ducklake:postgres:" + _libpq_keywords(catalog)
    endpoint = urlsplit(env["AWS_ENDPOINT_URL"])
    if endpoint.hostname in ("127.0.0.1", "localhost"):
        port = endpoint.port or 80
        listen = f"{second_host(settings).address(1)}:{port}"
        programs["forward-s3"] = [sys.executable, "-m", "penguin_pipeline.forward", listen]
        programs["forward-s3"].append(f"127.0.0.1:{port}")
    return programs


def bucket(env: dict[str, str]) -> str:
    """The bucket of the stores and the compute logs (PENGUIN_S3_BUCKET)."""
    return env.get("PENGUIN_S3_BUCKET", BUCKET)


def make_bucket(env: dict[str, str]) -> None:
    """The bucket of the stores, created when missing (moto's stand-in starts empty)."""
    import boto3
    from botocore.exceptions import EndpointConnectionError

    # With the processes' credentials, which this process's own environment may lack.
    client = boto3.client(
        "s3",
        endpoint_url=env["AWS_ENDPOINT_URL"],
        aws_access_key_id=env.get("AWS_ACCESS_KEY_ID"),
        aws_secret_access_key=env.get("AWS_SECRET_ACCESS_KEY"),
        region_name=env.get("AWS_DEFAULT_REGION"),
    )
    # supervisord calls the stand-in RUNNING before it listens: give it a few seconds to answer.
    deadline = time.monotonic() + BUCKET_WAIT_SECONDS
    while True:
        try:
            client.head_bucket(Bucket=bucket(env))
            return
        except client.exceptions.ClientError:
            client.create_bucket(Bucket=bucket(env))
            return
        except EndpointConnectionError as exc:
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"S3 at {env['AWS_ENDPOINT_URL']} does not answer after {BUCKET_WAIT_SECONDS} s"
                ) from exc
            time.sleep(0.3)


def _lake_database(pg_url: str) -> str:
    return urlsplit(pg_url).path.lstrip("/") + "_lake"


def _libpq_keywords(url: str) -> str:
    """A postgresql:// URL as DuckLake's ATTACH takes it: libpq keywords."""
    from . import prod

    parts = urlsplit(prod.libpq_url(url))
    words = {
        "dbname": parts.path.lstrip("/"),
        "host": parts.hostname,
        "port": parts.port,
        "user": parts.username,
        "password": parts.password,
    }
    return " ".join(f"{k}={v}" for k, v in words.items() if v)


def libpq_across_link(conninfo: str, host: Host) -> str:
    """A libpq keyword string (the lake's catalog) as the second host reaches it."""
    words = [
        f"host={host.address(1)}" if w in ("host=127.0.0.1", "host=localhost") else w
        for w in conninfo.split()
    ]
    return " ".join(words)


def _q(path: Path) -> str:
    import shlex

    return shlex.quote(str(path))


def _run(*argv: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)}: {done.stderr.strip() or done.returncode}")


def _quiet(*argv: str) -> bool:
    """Run a removal; True when it removed something (an absent thing is not an error here)."""
    return subprocess.run(argv, capture_output=True).returncode == 0


def main(argv: list[str] | None = None) -> int:
    """`python -m penguin_pipeline.hosts worker <index>`: supervisord's command for one worker on
    the second host. The URLs are rewritten here, from the environment, so none is written into
    supervisord's config."""
    from .settings import load_settings

    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 2 or argv[0] != "worker":
        print("usage: python -m penguin_pipeline.hosts worker <index>", file=sys.stderr)
        return 2
    settings = load_settings()
    host = second_host(settings)
    # A dead host's worker must fail within supervisord's startsecs (3 s), or supervisord counts
    # it as started and starts it again forever: so before the profile's imports (1.5 s idle).
    if not exists(host):
        print(
            f"the second host {host.hostname} is gone: no /run/netns/{host.netns}", file=sys.stderr
        )
        return 1
    from . import prod

    env = prod.process_env(settings)
    env.update(
        PENGUIN_PG_URL=across_link(env["PENGUIN_PG_URL"], host),
        PENGUIN_CELERY_BROKER=across_link(settings.celery_broker, host),
        PENGUIN_CELERY_BACKEND=across_link(settings.celery_backend, host),
    )
    if env.get("AWS_ENDPOINT_URL"):
        env["AWS_ENDPOINT_URL"] = across_link(env["AWS_ENDPOINT_URL"], host)
    scheme = "ducklake:postgres:"
    if env.get("PENGUIN_WAREHOUSE", "").startswith(scheme):
        conninfo = env["PENGUIN_WAREHOUSE"].removeprefix(scheme)
        env["PENGUIN_WAREHOUSE"] = scheme + libpq_across_link(conninfo, host)
    command = enter_command(host, prod.worker_command(settings, argv[1], host.hostname))
    os.execvpe(command[0], command, env)
    return 1  # not reached


if __name__ == "__main__":
    sys.exit(main())
