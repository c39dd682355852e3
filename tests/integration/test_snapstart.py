"""SnapStart's hooks, run the way Lambda's runtime runs them (through snapshot_restore_py's
registries, which the handlers fill when they are imported): after a restore no connection,
cached key or random state from before the snapshot is used again."""

from __future__ import annotations

import json
import random
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import snapshot_restore_py
from sqlalchemy import Engine, text

from devserver.issuer import LocalIssuer
from reminders import db
from tests.support.apigw import ApiResponse, rest_event
from tests.support.jwks import JwksServer, served_issuer
from tests.support.lambdas import FakeLambdaContext, load_function

TOKEN_EVENT = json.loads((Path(__file__).parents[1] / "events" / "apigateway_token_authorizer.json").read_text())


def restore() -> None:
    """What Lambda does when it resumes an environment from the snapshot."""
    for hook, args, kwargs in snapshot_restore_py.get_after_restore():
        hook(*args, **kwargs)


def take_snapshot() -> None:
    """What Lambda does before it takes the snapshot (hooks in reverse order of registration)."""
    for hook, args, kwargs in reversed(snapshot_restore_py.get_before_snapshot()):
        hook(*args, **kwargs)


def call(method: str, path: str, **kwargs: Any) -> ApiResponse:
    return ApiResponse(load_function("api").lambda_handler(rest_event(method, path, **kwargs), FakeLambdaContext()))


def backend_pids(engine: Engine) -> set[int]:
    with engine.connect() as connection:
        rows = connection.execute(
            text(
                "SELECT pid FROM pg_stat_activity"
                " WHERE application_name = 'event-reminders' AND pid <> pg_backend_pid()"
            )
        )
        return {int(pid) for (pid,) in rows}


def test_a_restored_api_drops_the_connection_and_engine_it_had_and_still_serves(engine: Engine) -> None:
    # Given a warm API function holding a pooled connection (as a snapshot taken late might)
    created = call("POST", "/events", body={"title": "Standup", "starts_at": _tomorrow()})
    assert created.status == 201, created
    before = db.get_engine(db.api_settings)
    with before.connect() as connection:
        pid = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
    assert pid in backend_pids(engine)

    # When Lambda resumes an environment from the snapshot
    restore()

    # Then that connection is closed (the server sees it go), the engine is a new one,
    # and requests are served on fresh connections
    assert before.pool.checkedin() == 0
    _wait_until(lambda: pid not in backend_pids(engine))
    assert db.get_engine(db.api_settings) is not before
    fetched = call("GET", f"/events/{created.json()['id']}")
    assert fetched.status == 200, fetched
    assert fetched.json() == created.json()


def test_a_restored_environment_draws_other_random_numbers_than_the_snapshot_would() -> None:
    load_function("api")
    random.seed(20261130)  # the state every environment restored from one snapshot shares
    from_the_snapshot = [random.random() for _ in range(4)]
    random.seed(20261130)
    restore()
    assert [random.random() for _ in range(4)] != from_the_snapshot


def test_the_snapshot_holds_what_only_some_requests_import(engine: Engine) -> None:
    module = load_function("api")
    take_snapshot()
    for name in module.SNAPSHOT_PRELOAD:
        assert name in sys.modules, name
    # and the snapshot holds no connection (the engine is created again on first use)
    assert call("GET", "/events").status == 200


@pytest.fixture
def jwks_server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[LocalIssuer, JwksServer]]:
    """The local issuer's keys over HTTP, counting every fetch of them."""
    with served_issuer(tmp_path / "keys", monkeypatch) as served:
        yield served


def test_a_restored_authorizer_fetches_the_issuers_keys_again(jwks_server: tuple[LocalIssuer, JwksServer]) -> None:
    issuer, keys = jwks_server
    authorizer = load_function("authorizer").lambda_handler

    def allowed() -> bool:
        token = {**TOKEN_EVENT, "authorizationToken": f"Bearer {issuer.mint('ana@example.com')}"}
        [statement] = authorizer(token, FakeLambdaContext())["policyDocument"]["Statement"]
        return bool(statement["Effect"] == "Allow")

    # Given a warm authorizer that fetched the keys once and serves from its cache
    assert allowed() and allowed()
    assert keys.fetches == 1
    # When the environment is restored from a snapshot, then the keys are fetched again
    restore()
    assert allowed()
    assert keys.fetches == 2


def _tomorrow() -> str:
    return (datetime.now(UTC) + timedelta(days=1)).isoformat()


def _wait_until(condition: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
