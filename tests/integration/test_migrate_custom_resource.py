"""MigrateFunction as the DatabaseMigrations custom resource: what CloudFormation reads back.

Each test sends the request shapes CloudFormation sends (tests/events) to the real handler, against
a real PostgreSQL database of its own, with the ResponseURL pointing at a small HTTP server here
that records every PUT, as S3's pre-signed URL would for CloudFormation.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import create_engine, inspect, make_url, text

from reminders import db, migrate
from tests.support.lambdas import ROOT, FakeLambdaContext, load_function
from tests.support.postgres import _create_database, _drop_database

CREATE_EVENT = json.loads((ROOT / "tests" / "events" / "cloudformation_custom_resource_create.json").read_text())
UNREACHABLE_DATABASE = "postgresql://postgres@127.0.0.1:9/nowhere"


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ResponseBucket:
    """Stands in for S3 behind CloudFormation's pre-signed URL: records each PUT."""

    base: str
    received: list[Received] = field(default_factory=list)

    def url(self, request_id: str) -> str:
        # The shape of CloudFormation's URL: an encoded key and a signature in the query string.
        return f"{self.base}/arn%3Aaws%3Acloudformation%7CDatabaseMigrations%7C{request_id}?X-Amz-Signature=abc%2Fdef"

    def wait_for(self, count: int) -> list[Received]:
        deadline = time.monotonic() + 60
        while len(self.received) < count and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.received


@pytest.fixture
def bucket() -> Iterator[ResponseBucket]:
    received: list[Received] = []

    class Handler(BaseHTTPRequestHandler):
        def do_PUT(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(length))
            received.append(Received(self.path, dict(self.headers.items()), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield ResponseBucket(f"http://127.0.0.1:{server.server_address[1]}", received)
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture
def empty_database(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A database of its own on the session's server, empty; the handler points at it."""
    admin = make_url(database_url)
    name = f"reminders_cr_{uuid.uuid4().hex[:10]}"
    _create_database(admin, name)
    url = admin.set(database=name).render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    db.dispose_engine()
    try:
        yield url
    finally:
        db.dispose_engine()
        _drop_database(admin, name)


def request(bucket: ResponseBucket, kind: str = "Create", **changes: Any) -> dict[str, Any]:
    """A CloudFormation custom resource request, as CloudFormation sends it for ``kind``."""
    event = copy.deepcopy(CREATE_EVENT)
    event["RequestType"] = kind
    event["RequestId"] = str(uuid.uuid4())
    if kind in ("Update", "Delete"):
        event["PhysicalResourceId"] = "database-migrations"
    if kind == "Update":
        event["OldResourceProperties"] = {**event["ResourceProperties"], "HeadRevision": "0000"}
    event.update(changes)
    event["ResponseURL"] = bucket.url(event["RequestId"])
    return event


def invoke(event: dict[str, Any], remaining_ms: int = 120_000) -> dict[str, Any]:
    handler: Callable[..., dict[str, Any]] = load_function("migrate").lambda_handler
    return handler(event, FakeLambdaContext(remaining_ms=remaining_ms))


def revisions(url: str) -> list[str]:
    engine = create_engine(db.normalize_url(url))
    try:
        with engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return []
            return list(connection.execute(text("SELECT version_num FROM alembic_version")).scalars())
    finally:
        engine.dispose()


def tables(url: str) -> set[str]:
    engine = create_engine(db.normalize_url(url))
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_create_migrates_an_empty_database_and_tells_cloudformation(
    bucket: ResponseBucket, empty_database: str
) -> None:
    event = request(bucket)
    invoke(event)
    (response,) = bucket.wait_for(1)
    # The URL is used exactly as sent (its query string is a signature), with no content type.
    assert response.path == event["ResponseURL"].removeprefix(bucket.base)
    assert response.headers.get("Content-Type", "") == ""
    assert response.body["Status"] == "SUCCESS", response.body
    assert response.body["PhysicalResourceId"] == "database-migrations"
    for key in ("StackId", "RequestId", "LogicalResourceId"):
        assert response.body[key] == event[key]
    assert response.body["Data"] == {"Before": "", "After": migrate.head_revision()}
    assert revisions(empty_database) == [migrate.head_revision()]
    assert {"events", "notifications"} <= tables(empty_database)


def test_a_repeated_request_succeeds_again_and_migrates_once(bucket: ResponseBucket, empty_database: str) -> None:
    event = request(bucket)
    invoke(event)
    invoke(copy.deepcopy(event))  # CloudFormation, or Lambda's retry of an async invoke, sends it again
    first, second = bucket.wait_for(2)
    assert first.body["Status"] == second.body["Status"] == "SUCCESS"
    assert first.body["PhysicalResourceId"] == second.body["PhysicalResourceId"]
    assert second.body["Data"] == {"Before": migrate.head_revision(), "After": migrate.head_revision()}
    assert revisions(empty_database) == [migrate.head_revision()]


def test_update_applies_what_is_pending_and_keeps_the_physical_id(bucket: ResponseBucket, empty_database: str) -> None:
    invoke(request(bucket, "Update"))
    (response,) = bucket.wait_for(1)
    assert response.body["Status"] == "SUCCESS", response.body
    # A different id would make CloudFormation treat the update as a replacement.
    assert response.body["PhysicalResourceId"] == "database-migrations"
    assert revisions(empty_database) == [migrate.head_revision()]


def test_a_failing_migration_fails_the_deploy_and_says_why(bucket: ResponseBucket, empty_database: str) -> None:
    # Given a database where the first migration cannot run (a table of that name is already there)
    engine = create_engine(db.normalize_url(empty_database))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE events (id integer)"))
    engine.dispose()
    invoke(request(bucket))
    (response,) = bucket.wait_for(1)
    assert response.body["Status"] == "FAILED"
    reason = response.body["Reason"]
    assert f"to {migrate.head_revision()} failed" in reason, reason
    assert 'relation "events" already exists' in reason, reason
    assert "\n" not in reason
    # Nothing half-applied: the migration ran in one transaction.
    assert revisions(empty_database) == []
    assert tables(empty_database) == {"events"}


def test_delete_succeeds_without_touching_the_database(bucket: ResponseBucket, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DATABASE)
    db.dispose_engine()
    invoke(request(bucket, "Delete"))
    (response,) = bucket.wait_for(1)
    assert response.body["Status"] == "SUCCESS"
    assert response.body["PhysicalResourceId"] == "database-migrations"
    db.dispose_engine()


def test_a_build_that_lacks_the_templates_head_fails_with_what_to_do(
    bucket: ResponseBucket, empty_database: str
) -> None:
    event = request(bucket)
    event["ResourceProperties"]["HeadRevision"] = "9999"
    invoke(event)
    (response,) = bucket.wait_for(1)
    assert response.body["Status"] == "FAILED"
    assert "9999" in response.body["Reason"] and "sam build" in response.body["Reason"]
    assert revisions(empty_database) == []


def test_a_database_ahead_of_the_code_is_left_alone_as_a_rollback_needs(
    bucket: ResponseBucket, empty_database: str
) -> None:
    # Given a database migrated by a newer release than the code now being rolled back to
    invoke(request(bucket))
    engine = create_engine(db.normalize_url(empty_database))
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    invoke(request(bucket, "Update"))
    _, response = bucket.wait_for(2)
    assert response.body["Status"] == "SUCCESS", response.body
    assert "newer" in response.body["Reason"]
    assert revisions(empty_database) == ["9999"]


def test_an_unreachable_database_fails_the_deploy_with_the_reason(
    bucket: ResponseBucket, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", UNREACHABLE_DATABASE)
    db.dispose_engine()
    invoke(request(bucket), remaining_ms=30_000)  # too little time left to wait for it
    (response,) = bucket.wait_for(1)
    assert response.body["Status"] == "FAILED"
    assert "unreachable" in response.body["Reason"], response.body
    db.dispose_engine()


def test_running_out_of_time_still_answers_cloudformation_once(bucket: ResponseBucket, empty_database: str) -> None:
    # Given another migrator holding the migration lock, so this run cannot finish in time
    holder = create_engine(db.normalize_url(empty_database))
    connection = holder.connect()
    transaction = connection.begin()
    connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": migrate._LOCK_KEY})
    try:
        run = threading.Thread(target=invoke, args=(request(bucket),), kwargs={"remaining_ms": 4_000})
        run.start()
        (response,) = bucket.wait_for(1)
        assert response.body["Status"] == "FAILED"
        assert "ran out of time" in response.body["Reason"]
    finally:
        transaction.rollback()
        connection.close()
        holder.dispose()
    run.join(timeout=60)
    # The run finished after the lock was released, but CloudFormation heard only the first answer.
    assert len(bucket.received) == 1


def test_an_unknown_request_type_is_answered_failed(bucket: ResponseBucket, empty_database: str) -> None:
    invoke(request(bucket, "Replace"))
    (response,) = bucket.wait_for(1)
    assert response.body["Status"] == "FAILED"
    assert "Replace" in response.body["Reason"]


def test_a_direct_invocation_still_migrates(empty_database: str) -> None:
    result = invoke({})
    assert result == {"status": "ok", "before": None, "after": migrate.head_revision()}
    assert revisions(empty_database) == [migrate.head_revision()]
