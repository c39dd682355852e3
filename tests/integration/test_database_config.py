"""Where the database is: a URL, or a Secrets Manager secret read through Powertools Parameters
from a real Secrets Manager API (moto server or LocalStack). Bad configuration gives a clear
503, never a traceback."""

from __future__ import annotations

import json
import ssl
import uuid
from typing import Any

import boto3
import pytest
from sqlalchemy import Engine

from reminders import db
from reminders.settings import DatabaseSettings
from tests.support.apigw import ApiResponse, rest_event
from tests.support.lambdas import FakeLambdaContext, load_function


def get_events() -> ApiResponse:
    handler = load_function("api").lambda_handler
    return ApiResponse(handler(rest_event("GET", "/events"), FakeLambdaContext()))


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("postgres://u:p@db:5433/app", "postgresql+pg8000://u:***@db:5433/app"),
        ("postgresql://u@db/app", "postgresql+pg8000://u@db/app"),
        ("postgresql+pg8000://u@db/app", "postgresql+pg8000://u@db/app"),
        (
            "postgresql://postgres:@/postgres?host=/tmp/pg",
            "postgresql+pg8000://postgres:***@/postgres?unix_sock=%2Ftmp%2Fpg%2F.s.PGSQL.5432",
        ),
    ],
)
def test_urls_are_normalized_for_pg8000(given: str, expected: str) -> None:
    assert str(db.normalize_url(given)) == expected


@pytest.mark.parametrize("bad", ["mysql://u@db/app", "not a url at all", "sqlite:///x.db"])
def test_non_postgres_urls_are_refused_clearly(bad: str) -> None:
    with pytest.raises(db.DatabaseConfigError):
        db.normalize_url(bad)


def test_secret_fields_can_be_overridden_for_rds_managed_secrets() -> None:
    settings = DatabaseSettings(db_secret_arn="arn:x", db_host="proxy.example.com", db_name="reminders")
    url = db.url_from_secret({"username": "app", "password": "pw"}, settings)
    assert (url.host, url.port, url.database, url.username) == ("proxy.example.com", 5432, "reminders", "app")
    with pytest.raises(db.DatabaseConfigError, match="host"):
        db.url_from_secret({"username": "app", "password": "pw"}, DatabaseSettings(db_secret_arn="arn:x"))


def test_a_secret_host_that_is_a_path_is_a_unix_socket_directory() -> None:
    url = db.url_from_secret({"username": "app", "password": "pw", "host": "/tmp/pg/", "port": 5433, "dbname": "r"})
    assert (url.host, url.port, url.database) == (None, None, "r")
    assert url.query["unix_sock"] == "/tmp/pg/.s.PGSQL.5433"


def test_tls_modes_follow_libpq() -> None:
    assert db.ssl_context("disable") is None
    required = db.ssl_context("require")
    assert required is not None and required.verify_mode == ssl.CERT_NONE
    verified = db.ssl_context("verify-full")
    assert verified is not None and verified.check_hostname and verified.verify_mode == ssl.CERT_REQUIRED


def test_sslmode_comes_from_the_url_or_the_secret_default() -> None:
    local = db.resolve_url(DatabaseSettings(database_url="postgresql://u@db/app"))
    assert "sslmode" not in local.query
    forced = db.resolve_url(DatabaseSettings(database_url="postgresql://u@db/app?sslmode=require"))
    assert forced.query["sslmode"] == "require"
    secret = db.url_from_secret({"username": "u", "password": "p", "host": "h"})
    assert secret.database == "postgres" and secret.port == 5432
    with pytest.raises(db.DatabaseConfigError, match="sslmode"):
        db.make_engine("postgresql://u@db/app?sslmode=prefer")


def test_api_reads_the_database_secret_from_secrets_manager(
    engine: Engine, database_url: str, aws_env: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A TCP server's host, or, for the embedded server (a Unix socket only), the socket's directory:
    # as with libpq, a host that is an absolute path names a socket directory.
    url = db.normalize_url(database_url)
    host, port = url.host, url.port or 5432
    unix_sock = url.query.get("unix_sock")
    if isinstance(unix_sock, str):
        directory, _, name = unix_sock.rpartition("/")
        host, port = directory, int(name.rsplit(".", 1)[-1])
    secrets = boto3.client("secretsmanager", region_name="us-east-1", endpoint_url=aws_env)
    arn = secrets.create_secret(
        Name=f"reminders-test-{uuid.uuid4().hex[:8]}",
        SecretString=json.dumps(
            {
                "username": url.username,
                "password": url.password or "",
                "host": host,
                "port": port,
                "dbname": url.database,
            }
        ),
    )["ARN"]
    monkeypatch.delenv("DATABASE_URL")
    monkeypatch.setenv("DB_SECRET_ARN", arn)
    monkeypatch.setenv("DB_SSLMODE", "disable")  # the test server has no certificate
    db.dispose_engine()
    response = get_events()
    assert response.status == 200, response
    assert response.json() == {"items": [], "next_cursor": None}


@pytest.mark.parametrize(
    "env",
    [
        {},
        {"DATABASE_URL": "mysql://u@db/app"},
        {"DATABASE_URL": "postgresql://u@db/app", "DB_POOL_SIZE": "lots"},
    ],
)
def test_bad_database_configuration_is_a_clear_503(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, env: dict[str, Any]
) -> None:
    monkeypatch.delenv("DATABASE_URL")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    db.dispose_engine()
    response = get_events()
    assert response.status == 503, response
    assert response.json()["message"] == "service unavailable: the database is not configured"


def test_unreachable_database_is_a_clear_503(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://postgres@127.0.0.1:9/nowhere")
    db.dispose_engine()
    response = get_events()
    assert response.status == 503, response
    assert "database unavailable" in response.json()["message"]
