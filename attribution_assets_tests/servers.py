"""Throwaway servers on loopback for tests: a PostgreSQL cluster and a Redis server, each in its own
temporary folder, on a free TCP port of 127.0.0.1, stopped and removed at the end.

The binaries come from Debian's ``postgresql`` and ``redis-server`` packages (``.ci/run`` installs
them). PostgreSQL refuses to run as root, so as root the cluster is owned by, and run as, the
``postgres`` system user (``runuser``); otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

START_TIMEOUT_S = 60.0
"""Seconds a server may take to accept connections."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _accepts(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.5)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def postgres_bin_dir() -> Path | None:
    """The newest ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``pg_ctl`` (or the ones on
    ``PATH``); ``None`` when PostgreSQL's server is not installed."""
    candidates = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name or 0), reverse=True
    )
    for folder in candidates:
        if (Path(folder) / "initdb").exists() and (Path(folder) / "pg_ctl").exists():
            return Path(folder)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb and shutil.which("pg_ctl") else None


def redis_binary() -> Path | None:
    """``redis-server`` on ``PATH``; ``None`` when it is not installed."""
    found = shutil.which("redis-server")
    return Path(found) if found else None


@dataclass(frozen=True)
class PostgresServer:
    """A running cluster: TCP on 127.0.0.1:``port``, password authentication for ``user``."""

    port: int
    user: str
    password: str
    database: str
    data_dir: Path
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        """``postgresql://user:password@127.0.0.1:port/database``."""
        return f"postgresql://{self.user}:{self.password}@{self.host}:{self.port}/{self.database}"

    def create_database(self, name: str) -> PostgresServer:
        """Create the empty database ``name`` on this server; returns the server with it as ``database``."""
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                      dbname=self.database)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(f'CREATE DATABASE "{name}"')
        finally:
            connection.close()
        return PostgresServer(self.port, self.user, self.password, name, self.data_dir, self.host)

    def execute(self, sql: str, params: tuple = ()) -> None:
        """Run one SQL statement that returns no rows against ``database``, outside a transaction."""
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                      dbname=self.database)
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
        finally:
            connection.close()

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Rows of one SQL statement run against ``database`` (a direct look into the storage)."""
        import psycopg2

        connection = psycopg2.connect(host=self.host, port=self.port, user=self.user, password=self.password,
                                      dbname=self.database)
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return list(cursor.fetchall())
        finally:
            connection.close()

    def env(self) -> dict[str, str]:
        """The environment variables the production ``deploy/dagster.yaml`` reads its storage from."""
        return {
            "DAGSTER_PG_HOST": self.host,
            "DAGSTER_PG_PORT": str(self.port),
            "DAGSTER_PG_USERNAME": self.user,
            "DAGSTER_PG_PASSWORD": self.password,
            "DAGSTER_PG_DB": self.database,
        }


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    return ["runuser", "-u", owner, "--", *command] if owner else command


def _run(command: list[str], owner: str | None, **kwargs) -> subprocess.CompletedProcess:
    result = subprocess.run(_as_owner(command, owner), capture_output=True, text=True, **kwargs)
    if result.returncode != 0:
        detail = result.stderr or result.stdout
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}): {detail}")
    return result


@contextlib.contextmanager
def postgres_server(database: str = "dagster", user: str = "attribution") -> Iterator[PostgresServer]:
    """Initialise a cluster in a new temporary folder, start it on a free loopback port (password
    authentication over TCP, no Unix socket outside the folder), create ``database``, yield the server,
    then stop it (fast shutdown) and remove the folder. Raises ``FileNotFoundError`` when the server
    binaries are missing."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        raise FileNotFoundError("PostgreSQL's initdb and pg_ctl not found; apt-get install postgresql")
    owner = "postgres" if os.geteuid() == 0 else None
    root = Path(tempfile.mkdtemp(prefix="attribution-pg-"))
    if owner:
        entry = pwd.getpwnam(owner)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    data, password = root / "data", secrets.token_hex(12)
    pwfile = root / "pwfile"
    pwfile.write_text(password + "\n")
    if owner:
        os.chown(pwfile, entry.pw_uid, entry.pw_gid)
    pwfile.chmod(0o600)
    port = free_port()
    try:
        _run([str(bin_dir / "initdb"), "-D", str(data), "-U", user, f"--pwfile={pwfile}",
              "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync"], owner)
        options = f"-c listen_addresses=127.0.0.1 -p {port} -k {root} -c fsync=off -c max_connections=200"
        _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "server.log"),
              "-w", "-t", str(int(START_TIMEOUT_S)), "start"], owner)
        try:
            _run([str(bin_dir / "createdb"), "-h", str(root), "-p", str(port), "-U", user, database], owner)
            yield PostgresServer(port, user, password, database, data)
        finally:
            _run([str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "stop"], owner)
    finally:
        shutil.rmtree(root, ignore_errors=True)


@dataclass(frozen=True)
class RedisServer:
    """A running Redis server on 127.0.0.1:``port`` (no persistence)."""

    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:port/0``: a Celery broker and result-backend URL."""
        return f"redis://127.0.0.1:{self.port}/0"


@contextlib.contextmanager
def redis_server() -> Iterator[RedisServer]:
    """Start ``redis-server`` on a free loopback port with its working folder in a new temporary folder
    (no snapshots, no append-only file), yield it once it accepts connections, then stop it (SIGTERM,
    then SIGKILL after 10 s) and remove the folder. Raises ``FileNotFoundError`` when the binary is
    missing."""
    binary = redis_binary()
    if binary is None:
        raise FileNotFoundError("redis-server not found; apt-get install redis-server")
    root = Path(tempfile.mkdtemp(prefix="attribution-redis-"))
    port = free_port()
    command = [str(binary), "--port", str(port), "--bind", "127.0.0.1", "--dir", str(root),
               "--save", "", "--appendonly", "no", "--protected-mode", "yes"]
    log = open(root / "redis.log", "wb")  # noqa: SIM115 - closed below, after the server stops
    process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _accepts(port):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start: {(root / 'redis.log').read_text()}")
            time.sleep(0.05)
        yield RedisServer(port, process)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)
