"""Helpers for the notifier's integration and fault tests: settings, one run, events, rows, the
emails an endpoint accepted, and an SES client that fails on purpose."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

from botocore.exceptions import ClientError
from sqlalchemy import Engine, select, text

from reminders import db, events
from reminders.clock import Clock
from reminders.delivery import RunSummary, run_notifier
from reminders.mailer import Mailer, SesMailer, ses_client
from reminders.models import Event, Notification
from reminders.schemas import EventCreate, EventUpdate
from reminders.settings import NotifierSettings
from tests.support import aws
from tests.support.lambdas import ROOT

OWNER = "owner@example.com"


class Outbox:
    """The emails the endpoint accepted since this was made."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self.start = aws.sent_count(endpoint)

    def emails(self) -> list[dict[str, Any]]:
        return aws.sent_emails(self.endpoint, self.start)


def notifier_settings(endpoint: str, **overrides: Any) -> NotifierSettings:
    values: dict[str, Any] = {
        "database_url": "postgresql://unused",
        "sender_email": aws.SENDER,
        "aws_endpoint_url": endpoint,
        "max_send_rate": 10_000.0,
        "send_concurrency": 4,
    }
    values.update(overrides)
    return NotifierSettings(**values)


def run(
    engine: Engine,
    endpoint: str,
    at: datetime | Clock,
    *,
    client: Any = None,
    mailer: Mailer | None = None,
    time_left: Callable[[], float] | None = None,
    **overrides: Any,
) -> RunSummary:
    """One notifier run at ``at`` (a time, or a clock) against the database and the SES endpoint."""
    config = notifier_settings(endpoint, **overrides)
    mailer = mailer or SesMailer(config.sender_email, client or ses_client(config))
    clock: Clock = at if callable(at) else (lambda: at)
    extra: dict[str, Any] = {"time_left": time_left} if time_left else {}
    return run_notifier(lambda: db.session_scope(engine), mailer, config, clock=clock, rng=random.Random(0), **extra)


def create_event(engine: Engine, now: datetime, **fields: Any) -> uuid.UUID:
    body = {"title": f"Team sync {uuid.uuid4().hex[:6]}", "recipients": ["ana@example.com"]} | fields
    with db.session_scope(engine) as session:
        return events.create_event(session, OWNER, EventCreate.model_validate(body), now).id


def update_event(engine: Engine, event_id: uuid.UUID, now: datetime, **fields: Any) -> None:
    """PATCH /events/{id}, through the same use case and request model the API uses."""
    with db.session_scope(engine) as session:
        events.update_event(session, OWNER, str(event_id), EventUpdate.model_validate(fields), now)


def rows(engine: Engine, event_id: uuid.UUID | None = None) -> list[Notification]:
    query = select(Notification).order_by(Notification.recipient, Notification.minutes_before, Notification.id)
    if event_id is not None:
        query = query.where(Notification.event_id == event_id)
    with db.session_scope(engine) as session:
        return list(session.scalars(query))


def delivery_log(engine: Engine) -> dict[tuple[str, str], tuple[str, int]]:
    """(recipient, event title) -> (status, unconfirmed attempts) of every reminder: an email is
    known by its recipient and its subject, which holds the title."""
    query = select(Notification.recipient, Event.title, Notification.status, Notification.unconfirmed_attempts).join(
        Event, Event.id == Notification.event_id
    )
    with db.session_scope(engine) as session:
        return {
            (recipient, title): (status, unconfirmed)
            for recipient, title, status, unconfirmed in session.execute(query)
        }


def email_key(request: dict[str, Any]) -> tuple[str, str]:
    """(recipient, event title) of an email the stand-in SES accepted, as in :func:`delivery_log`."""
    return request["to"][0], request["subject"].removeprefix("Reminder: ")


def reset_send_rate(engine: Engine) -> None:
    """Forget the shared send rate (a test that was throttled must not slow the next one)."""
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM send_rate"))


def ses_error(code: str, status: int, message: str = "Maximum sending rate exceeded.") -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": message}, "ResponseMetadata": {"HTTPStatusCode": status}}, "SendEmail"
    )


class FailingFirst:
    """The real SES client, except that its first ``failures`` sends raise ``code``."""

    def __init__(self, client: Any, failures: int, code: str, status: int) -> None:
        self.client = client
        self.failures = failures
        self.code = code
        self.status = status
        self.calls = 0

    def send_raw_email(self, **kwargs: Any) -> Any:
        self.calls += 1
        if self.calls <= self.failures:
            raise ses_error(self.code, self.status)
        return self.client.send_raw_email(**kwargs)


def metrics_emitted(output: str) -> dict[str, dict[str, Any]]:
    """The CloudWatch metrics (EMF lines) a run printed: name -> {"values", "dimensions", "namespace"}."""
    found: dict[str, dict[str, Any]] = {}
    for line in output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if not isinstance(document, dict) or "_aws" not in document:
            continue
        for directive in document["_aws"]["CloudWatchMetrics"]:
            dimensions = {name: document[name] for names in directive["Dimensions"] for name in names}
            for metric in directive["Metrics"]:
                value = document[metric["Name"]]
                entry = found.setdefault(
                    metric["Name"], {"values": [], "dimensions": dimensions, "namespace": directive["Namespace"]}
                )
                entry["values"].extend(value if isinstance(value, list) else [value])
    return found


def notifier_process(env: dict[str, str], timeout: float = 30) -> subprocess.Popen[str]:
    """NotifierFunction invoked once in a child process of its own (as Lambda runs it), configured by
    ``env`` on top of this process's environment."""
    return subprocess.Popen(
        [sys.executable, "-m", "tests.support.notifier_process", str(timeout)],
        cwd=ROOT,
        env={**os.environ, "POWERTOOLS_METRICS_DISABLED": "false", "POWERTOOLS_SERVICE_NAME": "notifier", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(process: subprocess.Popen[str], timeout: float = 120) -> tuple[dict[str, Any] | None, str, str]:
    """Wait for a notifier process: (its JSON result, or None if it printed none; stdout; stderr)."""
    stdout, stderr = process.communicate(timeout=timeout)
    result = None
    for line in stdout.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "sent" in document:
            result = document
    return result, stdout, stderr


def standin_env(endpoint: str, database_url: str, **settings: Any) -> dict[str, str]:
    """The environment of a notifier process against ``database_url`` and an SES at ``endpoint``."""
    return {
        "DATABASE_URL": database_url,
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_DEFAULT_REGION": "us-east-1",
        "SENDER_EMAIL": aws.SENDER,
        **{name.upper(): str(value) for name, value in settings.items()},
    }
