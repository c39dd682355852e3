"""Faults the API must survive, against real parts: a statement stuck behind a lock, a database
password rotated while the function is warm (Secrets Manager on the AWS endpoint, a PostgreSQL
cluster with password authentication), and the database stopped and started under load."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import pytest
from sqlalchemy import Connection, Engine, create_engine, select, text
from sqlalchemy.exc import DBAPIError

from reminders import db, migrate
from reminders.models import Event
from reminders.settings import ApiSettings
from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function
from tests.support.postgres import Cluster, throwaway_cluster
from tests.support.tcp import resetting_server

ANA = "ana@example.com"
API_GATEWAY_LIMIT_SECONDS = 29


def call(method: str, path: str, **kwargs: Any) -> ApiResponse:
    handler = load_function("api").lambda_handler
    return ApiResponse(handler(rest_event(method, path, **kwargs), FakeLambdaContext()))


def new_event(**overrides: Any) -> dict[str, Any]:
    starts = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    return {"title": "Team sync", "starts_at": starts, **overrides}


def test_the_apis_database_waits_end_well_inside_api_gateways_limit() -> None:
    settings = ApiSettings(database_url="postgresql://u@db/app")
    assert settings.db_statement_timeout is not None
    # A dead server: the pre-ping and one reconnect each wait a socket timeout.
    assert 2 * settings.db_socket_timeout < API_GATEWAY_LIMIT_SECONDS
    assert settings.db_statement_timeout + settings.db_socket_timeout < API_GATEWAY_LIMIT_SECONDS


def test_a_statement_stuck_behind_a_lock_answers_503_while_the_lock_is_still_held(engine: Engine) -> None:
    event = call("POST", "/events", body=new_event()).json()
    locked, release = threading.Event(), threading.Event()

    def hold_the_row() -> None:
        with engine.connect() as connection, connection.begin():
            connection.execute(select(Event).where(Event.id == uuid.UUID(event["id"])).with_for_update())
            locked.set()
            # Held for less than API Gateway's limit: an API that waited longer (the 30 s socket
            # timeout it had) would get the row and answer 200 after API Gateway gave up.
            release.wait(API_GATEWAY_LIMIT_SECONDS - 4)

    holder = threading.Thread(target=hold_the_row)
    holder.start()
    try:
        assert locked.wait(30)
        response = call("PATCH", f"/events/{event['id']}", body={"title": "Moved"})
        still_held = not release.is_set() and holder.is_alive()
    finally:
        release.set()
        holder.join()
    assert response.status == 503, response
    assert still_held, "the API answered only after the lock was released"
    assert response.json()["message"] == "database unavailable, try again shortly"
    assert call("GET", f"/events/{event['id']}").json()["title"] == "Team sync"
    assert call("PATCH", f"/events/{event['id']}", body={"title": "Moved"}).status == 200


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    with throwaway_cluster() as started:
        yield started


@dataclass(frozen=True)
class Owner:
    role: str
    password: str
    database: str


@pytest.fixture
def cluster_database(cluster: Cluster) -> Iterator[Owner]:
    """A migrated database on the cluster, owned by a role of its own."""
    role, password, name = f"app_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex, f"db_{uuid.uuid4().hex[:8]}"
    with admin_connection(cluster) as connection:
        connection.execute(text(f"CREATE ROLE {role} LOGIN PASSWORD '{password}'"))
        connection.execute(text(f"CREATE DATABASE {name} OWNER {role}"))
    owner = db.make_engine(cluster.url(role, password, name))
    migrate.upgrade(owner)
    owner.dispose()
    db.dispose_engine()
    yield Owner(role, password, name)
    db.dispose_engine()
    with admin_connection(cluster) as connection:
        connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        connection.execute(text(f"DROP ROLE IF EXISTS {role}"))


@contextmanager
def admin_connection(cluster: Cluster) -> Iterator[Connection]:
    admin = create_engine(db.normalize_url(cluster.url()), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            yield connection
    finally:
        admin.dispose()


def test_a_password_rotated_while_warm_is_read_again_from_the_secret(
    cluster: Cluster, cluster_database: Owner, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    role, password = cluster_database.role, cluster_database.password
    secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=aws_env)
    fields = {"username": role, "host": "127.0.0.1", "port": cluster.port, "dbname": cluster_database.database}
    arn = secrets.create_secret(
        Name=f"reminders-rotation-{uuid.uuid4().hex[:8]}", SecretString=json.dumps({**fields, "password": password})
    )["ARN"]
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("DB_SECRET_ARN", arn)
    monkeypatch.setenv("DB_SSLMODE", "disable")
    db.dispose_engine()

    # Given a warm function that has read the secret and holds a connection
    created = call("POST", "/events", body=new_event())
    assert created.status == 201, created

    # When the secret is rotated: a new password in PostgreSQL and in Secrets Manager, and the old
    # session ends (the pool recycles it, or a frozen environment's socket died)
    rotated = uuid.uuid4().hex
    with admin_connection(cluster) as connection:
        connection.execute(text(f"ALTER ROLE {role} PASSWORD '{rotated}'"))
        secrets.put_secret_value(SecretId=arn, SecretString=json.dumps({**fields, "password": rotated}))
        connection.execute(
            # With a timeout it waits until the session has ended (without, it only signals it, and
            # the next request could find the socket still open: the flake seen in a loaded make test).
            text("SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = :r"),
            {"r": role},
        )
        # pg_terminate_backend only signals: wait until the session has ended (its farewell sent), or
        # the next request may use the connection first and get the 503 of a session ended mid-request.
        # (Seen once against LocalStack, whose slower Secrets Manager shifts this test's timing.)
        deadline = time.monotonic() + 10
        while connection.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE usename = :r"), {"r": role}
        ).scalar():
            assert time.monotonic() < deadline, "the terminated session did not end"
            time.sleep(0.02)

    # Then the next requests reconnect with the new password, without a restart
    for _ in range(3):
        response = call("GET", f"/events/{created.json()['id']}")
        assert response.status == 200, response
        assert response.json() == created.json()


def test_a_database_that_resets_the_connection_mid_handshake_gives_503_not_500(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A PostgreSQL shutting down resets new connections after pg8000's SSL request: a raw
    # ConnectionResetError, which the API answered with 500 (seen once in the test below, in make test).
    with resetting_server() as port:
        monkeypatch.setenv("DATABASE_URL", f"postgresql://app:pw@127.0.0.1:{port}/app")
        db.dispose_engine()
        try:
            created = call("POST", "/events", body=new_event(), headers={"Idempotency-Key": str(uuid.uuid4())})
            listed = call("GET", "/events")
        finally:
            db.dispose_engine()
    for response in (created, listed):
        assert response.status == 503, response
        assert response.json()["message"] == "database unavailable, try again shortly"


def test_a_reset_mid_handshake_is_a_dbapi_error_that_says_unavailable() -> None:
    # What the notifier's `except DBAPIError` and is_unavailable() catch; a raw OSError escaped both.
    with resetting_server() as port:
        engine = db.make_engine(f"postgresql://app:pw@127.0.0.1:{port}/app", socket_timeout=5)
        try:
            with pytest.raises(DBAPIError) as failure:
                engine.connect().close()
        finally:
            engine.dispose()
    assert db.is_unavailable(failure.value)
    assert isinstance(failure.value.orig.__cause__, OSError)  # pg8000's InterfaceError, from the reset


def test_the_database_stopped_and_started_under_load_gives_503s_then_recovers_and_loses_nothing(
    cluster: Cluster, cluster_database: Owner, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner = cluster_database
    monkeypatch.setenv("DATABASE_URL", cluster.url(owner.role, owner.password, owner.database))
    db.dispose_engine()
    statuses: list[int] = []
    stopped, restarted = threading.Event(), threading.Event()

    def outage() -> None:
        """Stop the database after some requests succeeded; start it again after some failed."""
        while statuses.count(201) < 5:
            restarted.wait(0.05)
        cluster.stop("fast")
        stopped.set()
        while statuses.count(503) < 5:
            restarted.wait(0.05)
        cluster.start()
        restarted.set()

    controller = threading.Thread(target=outage, daemon=True)
    controller.start()
    created: dict[str, str] = {}
    # Each logical request is retried with its Idempotency-Key until it succeeds, as a client would.
    for n in range(30):
        if n == 10:
            assert stopped.wait(120), "the database was never stopped"
        key = f"load-{n}-{uuid.uuid4()}"
        while True:
            response = call("POST", "/events", body=new_event(title=f"n{n}"), headers={"Idempotency-Key": key})
            statuses.append(response.status)
            if response.status == 201:
                created[f"n{n}"] = response.json()["id"]
                break
            assert response.status == 503, response
            assert "unavailable" in response.json()["message"]
            restarted.wait(0.05)  # a client's pause before its retry
    controller.join(120)

    assert restarted.is_set()
    assert set(statuses) == {201, 503}
    # Recovered without restarting the function; every event answered 201 is there, once.
    listed = call("GET", "/events", query={"limit": "100"})
    assert listed.status == 200, listed
    assert sorted((e["title"], e["id"]) for e in listed.json()["items"]) == sorted(created.items())
