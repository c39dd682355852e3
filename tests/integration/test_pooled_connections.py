"""The pooled connection a warm Lambda environment reuses: checked before each use without a round
trip, pinged when it sat idle, replaced when dead, so a dead socket costs no request its answer."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError

from reminders import db
from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function
from tests.support.tcp import SilenceableRelay, silenceable_relay


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT pg_backend_pid()")).scalar_one())


@pytest.fixture
def relay(database_url: str) -> Iterator[SilenceableRelay]:
    with silenceable_relay(database_url) as started:
        yield started


def test_a_connection_the_server_ended_while_idle_is_replaced_before_use(migrated_engine: Engine) -> None:
    # Given a pooled connection, used a moment ago (so no ping is due)
    engine = db.make_engine(migrated_engine.url, ping_after_idle=3600)
    try:
        pid = backend_pid(engine)
        # When the server ends its session (a restart, a failover, an idle timeout, a rotation)
        with migrated_engine.connect() as admin:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        time.sleep(0.2)  # the server's farewell reaches the client's socket
        # Then the next use gets a new connection instead of an error
        assert backend_pid(engine) != pid
    finally:
        engine.dispose()


def test_a_connection_gone_silent_while_idle_is_pinged_and_replaced(relay: SilenceableRelay) -> None:
    # Given a pooled connection through a network path that then forgets it (no FIN, no RST)
    engine = db.make_engine(relay.url, socket_timeout=1, ping_after_idle=0.3)
    try:
        first = backend_pid(engine)
        relay.silence()
        # When it is used again after sitting idle (a thawed Lambda environment)
        time.sleep(0.5)
        # Then the ping finds it dead and the statement runs on a new connection
        assert backend_pid(engine) != first
    finally:
        engine.dispose()


def test_without_the_idle_ping_a_silent_connection_fails_its_statement(relay: SilenceableRelay) -> None:
    # The counterpart of the test above: what the idle ping saves a request from.
    engine = db.make_engine(relay.url, socket_timeout=1, ping_after_idle=3600)
    try:
        backend_pid(engine)
        relay.silence()
        time.sleep(0.5)
        with pytest.raises(DBAPIError) as failure:
            backend_pid(engine)
        assert db.is_unavailable(failure.value)
    finally:
        engine.dispose()


def test_a_request_whose_connection_goes_silent_mid_use_gets_a_503_and_the_next_one_an_answer(
    engine: Engine, relay: SilenceableRelay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", relay.url.render_as_string(hide_password=False))
    monkeypatch.setenv("DB_SOCKET_TIMEOUT", "1")
    db.dispose_engine()
    created = call("POST", "/events", body={"title": "Standup", "starts_at": _tomorrow()})
    assert created.status == 201, created
    # The path goes silent between two requests a moment apart (too soon for a ping):
    relay.silence()
    lost = call("GET", f"/events/{created.json()['id']}")
    assert lost.status == 503, lost
    assert lost.json()["message"] == "database unavailable, try again shortly"
    again = call("GET", f"/events/{created.json()['id']}")
    assert again.status == 200, again
    db.dispose_engine()


def call(method: str, path: str, **kwargs: Any) -> ApiResponse:
    return ApiResponse(load_function("api").lambda_handler(rest_event(method, path, **kwargs), FakeLambdaContext()))


def _tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()
