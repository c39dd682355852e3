"""Idempotency-Key on POST /events (CONTRACT.md v1.1, Stripe's rules), against a real PostgreSQL:
a retry gets the first response and creates nothing; two identical requests at once create one
event; a request that crashed mid-way leaves nothing behind, and its retry goes through."""

from __future__ import annotations

import os
import signal
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, func, select, text, update

from reminders.db import session_scope
from reminders.models import Event, IdempotencyRecord, Notification
from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, child_result, invoke_in_child, load_function

ANA, BEN = "ana@example.com", "ben@example.com"


@pytest.fixture
def api(engine: Engine) -> Any:
    handler = load_function("api").lambda_handler

    def call(method: str, path: str, *, as_user: str = ANA, **kwargs: Any) -> ApiResponse:
        return ApiResponse(handler(rest_event(method, path, as_user=as_user, **kwargs), FakeLambdaContext()))

    return call


@pytest.fixture
def key() -> str:
    return f"key-{uuid.uuid4()}"


# One start time for the whole module: two calls of body() must give the same request, even
# when the clock ticks into the next second between them.
STARTS = (datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0).isoformat()


def body(**overrides: Any) -> dict[str, Any]:
    starts = STARTS
    return {"title": "Team sync", "starts_at": starts, "recipients": [ANA], **overrides}


def post(api: Any, key: str | None, payload: dict[str, Any], as_user: str = ANA) -> ApiResponse:
    headers = {"Idempotency-Key": key} if key is not None else {}
    return api("POST", "/events", as_user=as_user, body=payload, headers=headers)


def stored_events(engine: Engine) -> list[tuple[str, str]]:
    with session_scope(engine) as session:
        return [(str(i), o) for i, o in session.execute(select(Event.id, Event.owner).order_by(Event.created_at))]


def notification_count(engine: Engine) -> int:
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(Notification)) or 0)


def test_a_retry_with_the_same_key_and_body_gets_the_first_response_and_creates_nothing(
    api: Any, engine: Engine, key: str
) -> None:
    payload = body()
    first = post(api, key, payload)
    assert first.status == 201, first
    assert "idempotent-replayed" not in first.headers

    for _ in range(3):
        again = post(api, key, payload)
        assert again.status == 201, again
        assert again.json() == first.json()
        assert again.headers["location"] == first.headers["location"]
        assert again.headers["idempotent-replayed"] == "true"
    assert stored_events(engine) == [(first.json()["id"], ANA)]
    assert notification_count(engine) == 1


def test_the_replay_is_the_first_response_even_after_the_event_changed(api: Any, key: str) -> None:
    payload = body()
    first = post(api, key, payload).json()
    assert api("PATCH", f"/events/{first['id']}", body={"title": "Renamed"}).status == 200
    assert post(api, key, payload).json() == first


def test_the_same_key_with_a_different_body_is_422_and_creates_nothing(api: Any, engine: Engine, key: str) -> None:
    first = post(api, key, body(title="One"))
    assert first.status == 201
    response = post(api, key, body(title="Two"))
    assert response.status == 422, response
    assert "Idempotency-Key" in response.json()["message"]
    assert stored_events(engine) == [(first.json()["id"], ANA)]


def test_keys_are_scoped_to_the_caller(api: Any, engine: Engine, key: str) -> None:
    anas = post(api, key, body())
    bens = post(api, key, body(recipients=[BEN]), as_user=BEN)
    assert anas.status == bens.status == 201
    assert anas.json()["id"] != bens.json()["id"]
    assert "idempotent-replayed" not in bens.headers
    assert sorted(owner for _, owner in stored_events(engine)) == [ANA, BEN]
    # Ben's retry replays his own event, never Ana's.
    assert post(api, key, body(recipients=[BEN]), as_user=BEN).json() == bens.json()


def test_without_a_key_every_post_creates_an_event(api: Any, engine: Engine) -> None:
    payload = body()
    assert post(api, None, payload).status == post(api, None, payload).status == 201
    assert len(stored_events(engine)) == 2


def test_a_refused_request_stores_nothing_so_its_corrected_retry_may_reuse_the_key(
    api: Any, engine: Engine, key: str
) -> None:
    past = post(api, key, body(starts_at="2020-01-01T00:00:00Z"))
    assert past.status == 422, past
    corrected = post(api, key, body())
    assert corrected.status == 201, corrected
    assert stored_events(engine) == [(corrected.json()["id"], ANA)]


@pytest.mark.parametrize(("length", "status"), [(1, 201), (255, 201), (256, 422)])
def test_keys_are_up_to_255_characters(api: Any, length: int, status: int) -> None:
    assert post(api, "k" * length, body()).status == status


def test_an_empty_key_is_422(api: Any, engine: Engine) -> None:
    assert post(api, "", body()).status == 422
    assert stored_events(engine) == []


def test_after_24_hours_the_key_creates_a_new_event(api: Any, engine: Engine, key: str) -> None:
    payload = body()
    first = post(api, key, payload).json()
    with session_scope(engine) as session:  # 24 hours pass
        session.execute(update(IdempotencyRecord).values(expiry_timestamp=int(time.time()) - 1))
    later = post(api, key, payload)
    assert later.status == 201 and "idempotent-replayed" not in later.headers
    assert later.json()["id"] != first["id"]
    assert post(api, key, payload).json() == later.json()


# --- Separate execution environments at once, and a crash mid-request ---------------------------------


@contextmanager
def notifications_locked(engine: Engine) -> Iterator[None]:
    """Hold a lock that stops every POST just before it plans its reminders: after it wrote its
    idempotency record and its event, before it commits them."""
    with engine.connect() as connection, connection.begin():
        connection.execute(text("LOCK TABLE notifications IN SHARE MODE"))
        yield


def wait_until_blocked(engine: Engine, count: int) -> None:
    """Until ``count`` API connections wait on a lock (a condition, not a timing: no sleep decides)."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        with engine.connect() as connection:
            waiting = connection.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                    " AND application_name = 'event-reminders' AND wait_event_type = 'Lock'"
                )
            ).scalar_one()
        if waiting >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{count} requests never blocked")


CHILD_ENV = {"DB_STATEMENT_TIMEOUT": "20"}  # the children wait on this test's lock, not on a slow database


def post_in_child(key: str, payload: dict[str, Any]) -> Any:
    event = rest_event("POST", "/events", body=payload, headers={"Idempotency-Key": key})
    return invoke_in_child("api", event, {**CHILD_ENV, "DATABASE_URL": os.environ["DATABASE_URL"]})


def test_two_identical_requests_at_once_create_one_event(api: Any, engine: Engine, key: str) -> None:
    payload = body()
    with notifications_locked(engine):
        first = post_in_child(key, payload)
        wait_until_blocked(engine, 1)  # the first holds the key, uncommitted
        second = post_in_child(key, payload)
        wait_until_blocked(engine, 2)  # the second waits for the first's outcome
    results = [ApiResponse(child_result(first)), ApiResponse(child_result(second))]

    assert [r.status for r in results] == [201, 201], results
    assert results[0].json() == results[1].json()
    assert "idempotent-replayed" not in results[0].headers
    assert results[1].headers["idempotent-replayed"] == "true"
    assert stored_events(engine) == [(results[0].json()["id"], ANA)]
    assert notification_count(engine) == 1


def test_a_request_that_crashed_mid_way_leaves_nothing_and_its_retry_goes_through(
    api: Any, engine: Engine, key: str
) -> None:
    payload = body()
    with notifications_locked(engine):
        crashing = post_in_child(key, payload)
        wait_until_blocked(engine, 1)  # its idempotency record and event are written, not committed
        retry_at_once = post_in_child(key, payload)
        wait_until_blocked(engine, 2)
        os.kill(crashing.pid, signal.SIGKILL)  # the execution environment dies mid-request
        crashing.wait(30)
    retried = ApiResponse(child_result(retry_at_once))

    # The retry that was waiting takes the key over and creates the event, once.
    assert retried.status == 201, retried
    assert "idempotent-replayed" not in retried.headers
    assert stored_events(engine) == [(retried.json()["id"], ANA)]
    assert notification_count(engine) == 1
    # Later retries replay it.
    again = post(api, key, payload)
    assert again.json() == retried.json() and again.headers["idempotent-replayed"] == "true"
    assert len(stored_events(engine)) == 1
