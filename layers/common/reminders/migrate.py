"""Apply Alembic migrations programmatically (MigrateFunction, the local runtime, tests).

An advisory lock makes concurrent callers (two workers starting at once, a deploy racing a
test run) apply each migration exactly once. Migrations only ever go up: a database already at
a revision newer than this code knows (a rolled-back deploy) is left as it is.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant unique to this product: the key of the migration advisory lock.
_LOCK_KEY = 0x72656D696E64
# SQLSTATE classes that mean "not reachable yet" (a proxy or instance still starting), worth a retry.
_RETRYABLE_SQLSTATES = ("08", "57P03")


class MigrationFailed(Exception):
    """The schema could not be brought up to date; the message says why, in one line."""


@dataclass(frozen=True)
class MigrationResult:
    before: str | None
    after: str | None
    head: str | None
    # Set when nothing was done for a reason worth telling (the database is ahead of this code).
    note: str = ""


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def _scripts() -> ScriptDirectory:
    return ScriptDirectory.from_config(_config())


def head_revision() -> str | None:
    return _scripts().get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade(engine: Engine, revision: str = "head") -> dict[str, str | None]:
    """Bring the schema to ``revision``; returns the revisions before and after."""
    before = current_revision(engine)
    with engine.begin() as connection:
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
        config = _config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)
    return {"before": before, "after": current_revision(engine)}


def _knows(scripts: ScriptDirectory, revision: str) -> bool:
    try:
        return scripts.get_revision(revision) is not None
    except CommandError:
        return False


def apply(engine: Engine, *, expected_head: str | None = None, deadline: float | None = None) -> MigrationResult:
    """Bring the schema to this code's head, as a deploy does; every failure is a MigrationFailed.

    ``expected_head`` is the head the deploy was built for (the template's HeadRevision): one this
    code has never heard of means the build is stale. ``deadline`` (time.monotonic()) bounds how long
    an unreachable database is waited for: a database or proxy created moments ago may not answer yet.
    """
    scripts = _scripts()
    head = scripts.get_current_head()
    if expected_head and not _knows(scripts, expected_head):
        raise MigrationFailed(
            f"the deploy expects migration head {expected_head}, but this build's migrations end at {head}: "
            "run sam build, then deploy again"
        )
    before = _wait_for_database(engine, deadline)
    if before is not None and not _knows(scripts, before):
        note = f"the database is at revision {before}, newer than this code's head {head}: left as it is"
        return MigrationResult(before=before, after=before, head=head, note=note)
    try:
        after = upgrade(engine)["after"]
    except Exception as exc:
        start = before or "an empty database"
        raise MigrationFailed(f"migrating from {start} to {head} failed: {describe(exc)}") from exc
    return MigrationResult(before=before, after=after, head=head)


def _wait_for_database(engine: Engine, deadline: float | None) -> str | None:
    """The database's current revision, retrying while it is not reachable yet and time remains."""
    pause = 2.0
    while True:
        try:
            return current_revision(engine)
        except DBAPIError as exc:
            if not _retryable(exc):
                raise MigrationFailed(f"cannot read the database's revision: {describe(exc)}") from exc
            if deadline is None or time.monotonic() + pause > deadline:
                raise MigrationFailed(f"the database is unreachable: {describe(exc)}") from exc
        time.sleep(pause)
        pause = min(pause * 2, 15.0)


def _retryable(exc: DBAPIError) -> bool:
    if isinstance(exc, OperationalError | InterfaceError):
        return True
    return _sqlstate(exc).startswith(_RETRYABLE_SQLSTATES)


def _sqlstate(exc: DBAPIError) -> str:
    # pg8000 carries the server's error fields as a dict: C is the SQLSTATE, M the message.
    fields = exc.orig.args[0] if exc.orig is not None and exc.orig.args else None
    return str(fields.get("C", "")) if isinstance(fields, dict) else ""


def describe(exc: BaseException) -> str:
    """One line for a person: the server's message and SQLSTATE, not SQLAlchemy's multi-line dump."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        fields = exc.orig.args[0] if exc.orig.args else None
        if isinstance(fields, dict) and "M" in fields:
            return f"{fields['M']} (SQLSTATE {fields.get('C', '?')})"
        exc = exc.orig
    text_ = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text_[0]}" if text_ else type(exc).__name__
