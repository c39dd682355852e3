"""Apply Alembic migrations programmatically (MigrateFunction, the local runtime, tests).

An advisory lock makes concurrent callers (two workers starting at once, a deploy racing a
test run) apply each migration exactly once.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, text

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
# Any constant unique to this product: the key of the migration advisory lock.
_LOCK_KEY = 0x72656D696E64


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_config()).get_current_head()


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
