"""Fixtures shared by every tier: a real PostgreSQL, the handlers loaded as Lambda loads them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

from reminders import db, migrate
from tests.support import aws
from tests.support.postgres import test_database

# Handlers read their configuration from the environment, as in Lambda.
os.environ.setdefault("AWS_DEFAULT_REGION", "us-east-1")
os.environ.setdefault("POWERTOOLS_METRICS_NAMESPACE", "EventReminders")
os.environ.setdefault("POWERTOOLS_TRACE_DISABLED", "true")
os.environ.setdefault("POWERTOOLS_LOG_LEVEL", "WARNING")
os.environ.setdefault("POWERTOOLS_METRICS_DISABLED", "true")


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with test_database() as url:
        yield url


@pytest.fixture(scope="session")
def migrated_engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(database_url, pool_size=4)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def engine(migrated_engine: Engine, database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    """An empty, migrated database; handlers in this process point at it too."""
    with migrated_engine.begin() as connection:
        connection.execute(text("TRUNCATE notifications, events, suppressions RESTART IDENTITY CASCADE"))
    monkeypatch.setenv("DATABASE_URL", database_url)
    db.dispose_engine()
    yield migrated_engine
    db.dispose_engine()


@pytest.fixture(scope="session")
def aws_endpoint() -> Iterator[str]:
    """A real AWS API endpoint: AWS_ENDPOINT_URL when set (LocalStack), else moto in server mode."""
    configured = os.environ.get("AWS_ENDPOINT_URL")
    if configured:
        aws.verify_sender(configured)
        yield configured
        return
    with aws.moto_server() as endpoint:
        aws.verify_sender(endpoint)
        yield endpoint


@pytest.fixture
def aws_env(aws_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point this test's boto3 clients (and handlers) at the endpoint, with dummy credentials.

    Per test, not per session, so tests that use moto's in-process mock_aws are not redirected;
    the sender is verified again in case such a test reset moto's backends meanwhile.
    """
    aws.verify_sender(aws_endpoint)
    monkeypatch.setenv("AWS_ENDPOINT_URL", aws_endpoint)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "test")
    monkeypatch.setenv("SENDER_EMAIL", aws.SENDER)
    return aws_endpoint


@pytest.fixture
def now() -> datetime:
    return datetime.now(UTC).replace(microsecond=0)


def in_minutes(minutes: float, *, now: datetime | None = None) -> datetime:
    return (now or datetime.now(UTC)) + timedelta(minutes=minutes)
