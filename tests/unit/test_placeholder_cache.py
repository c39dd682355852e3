"""Our engines keep pg8000's placeholder rewriting (``%s`` to ``$n``) per statement text: the cached
rewrite must be exactly pg8000's own, for every text, however often it is asked for."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pg8000.dbapi
import pg8000.legacy
import pytest
from sqlalchemy import select, update
from sqlalchemy.dialects import postgresql

from reminders import db
from reminders.models import Event, Notification

HAND_WRITTEN = [
    "SELECT %s",
    "SELECT %s, %s FROM t WHERE a = %s",
    "SELECT '%%' || %s",
    "SELECT 100 %% 7, %s",
    "SELECT 'it''s %s here', %s",
    "SELECT E'a\\' %s', %s",
    'SELECT "odd%s column" FROM t WHERE x = %s',
    "SELECT $$ %s $$, %s",
    "-- a %s comment\nSELECT %s",
    "SELECT %s::jsonb -> 'k', %s::text[]",
    "UPDATE t SET v = %s WHERE id = ANY(%s) RETURNING id",
]


def compiled() -> list[str]:
    dialect = postgresql.dialect(paramstyle="format")
    now = datetime.now(UTC)
    statements = [
        select(Event).where(Event.id == uuid.uuid4(), Event.owner == "ana@example.com", Event.title.like("%x%")),
        update(Notification).where(Notification.id.in_([1, 2, 3])).values(status="sent", sent_at=now),
    ]
    return [str(statement.compile(dialect=dialect)) for statement in statements]


@pytest.fixture(scope="module", autouse=True)
def engine_made() -> None:
    db.make_engine("postgresql://nobody@127.0.0.1:1/none").dispose()


def test_the_cache_is_what_pg8000s_legacy_cursor_calls() -> None:
    assert getattr(pg8000.legacy.convert_paramstyle, "cached_by_reminders", False)


@pytest.mark.parametrize("query", HAND_WRITTEN + compiled())
def test_each_text_is_rewritten_as_pg8000_rewrites_it(query: str) -> None:
    args = tuple(range(query.count("%s")))
    expected = pg8000.dbapi.convert_paramstyle("format", query, args)
    for _ in range(3):  # first sight, then from the cache
        assert pg8000.legacy.convert_paramstyle("format", query, args) == expected


def test_other_styles_and_bad_placeholders_are_pg8000s_business() -> None:
    named = "SELECT :a, :b"
    assert pg8000.legacy.convert_paramstyle("named", named, {"a": 1, "b": 2}) == pg8000.dbapi.convert_paramstyle(
        "named", named, {"a": 1, "b": 2}
    )
    for _ in range(2):
        with pytest.raises(pg8000.dbapi.InterfaceError):
            pg8000.legacy.convert_paramstyle("format", "SELECT %d", (1,))
