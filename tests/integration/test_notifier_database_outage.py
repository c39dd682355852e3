"""The database going away under the notifier. A throwaway PostgreSQL cluster of this module's
own (tests/support/postgres.py: pg_ctl in a temporary folder; the machine's server is never
stopped) is stopped and started while the real handler runs in this process, warm, as in Lambda;
SES is the stand-in."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from reminders import db, migrate, settings
from reminders.clock import utcnow
from reminders.observability import metrics
from tests.support import aws
from tests.support.lambdas import ROOT, FakeLambdaContext, load_function
from tests.support.notifier import create_event, delivery_log, email_key, metrics_emitted, run
from tests.support.postgres import Cluster, throwaway_cluster
from tests.support.ses_standin import SesStandIn, standin, standin_server  # noqa: F401 (fixtures)

SCHEDULED_EVENT = json.loads((ROOT / "tests" / "events" / "eventbridge_scheduled.json").read_text())
CONCURRENCY = 4
LEASE_SECONDS = 31


class Throwaway:
    """The cluster, migrated, with an engine of the test's own for setting up and reading rows."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.url = cluster.url()
        self.engine = db.make_engine(self.url)
        migrate.upgrade(self.engine)

    def stop(self) -> None:
        self.cluster.stop()

    def start(self) -> None:
        with suppress(subprocess.CalledProcessError):  # already running
            self.cluster.start()


@pytest.fixture(scope="module")
def throwaway() -> Iterator[Throwaway]:
    with throwaway_cluster() as cluster:
        server = Throwaway(cluster)
        yield server
        server.engine.dispose()


@pytest.fixture
def database(throwaway: Throwaway, monkeypatch: pytest.MonkeyPatch) -> Iterator[Throwaway]:
    throwaway.start()
    with throwaway.engine.begin() as connection:
        connection.execute(text("TRUNCATE notifications, events, send_rate"))
    monkeypatch.setenv("DATABASE_URL", throwaway.url)
    db.dispose_engine()
    yield throwaway
    throwaway.start()
    db.dispose_engine()


@pytest.fixture
def handler(
    database: Throwaway,
    standin: SesStandIn,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[Callable[..., dict[str, Any]]]:
    for name, value in {
        "AWS_ENDPOINT_URL": standin.endpoint,
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "SENDER_EMAIL": aws.SENDER,
        "LEASE_SECONDS": str(LEASE_SECONDS),
        "SEND_CONCURRENCY": str(CONCURRENCY),
        "POWERTOOLS_METRICS_DISABLED": "false",
    }.items():
        monkeypatch.setenv(name, value)
    settings.notifier_settings.cache_clear()
    metrics.clear_metrics()
    yield load_function("notifier").lambda_handler
    settings.notifier_settings.cache_clear()


def test_a_run_with_the_database_down_ends_with_a_summary_and_the_next_run_resumes(
    database: Throwaway,
    standin: SesStandIn,  # noqa: F811
    handler: Callable[..., dict[str, Any]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given a warm notifier (its pooled connection open) and a reminder due
    assert handler(SCHEDULED_EVENT, FakeLambdaContext())["sent"] == 0
    create_event(database.engine, utcnow(), starts_at=(utcnow() + timedelta(minutes=3)).isoformat())
    capsys.readouterr()

    # When the database is down for a run
    database.stop()
    result = handler(SCHEDULED_EVENT, FakeLambdaContext())

    # Then it ends with a readable 503 summary and a metric, not a traceback
    assert (result["statusCode"], result["sent"], result["claimed"]) == (503, 0, 0)
    assert result["message"].startswith("database unavailable: ")
    assert metrics_emitted(capsys.readouterr().out)["NotifierDatabaseUnavailable"]["values"] == [1]

    # And once it is back, the same warm process sends the reminder on its next run
    database.start()
    result = handler(SCHEDULED_EVENT, FakeLambdaContext())
    assert (result.get("statusCode"), result["sent"]) == (None, 1)
    assert len(standin.accepted()) == 1


@pytest.mark.slow
def test_the_database_stopping_mid_run_ends_the_run_cleanly_and_loses_no_reminder(
    database: Throwaway,
    standin: SesStandIn,  # noqa: F811
    handler: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given 200 reminders due, SES answering in 20 ms, 50 sends a second
    now = utcnow()
    for n in range(4):
        create_event(
            database.engine,
            now,
            title=f"Launch {n}",
            starts_at=(now + timedelta(hours=1)).isoformat(),
            recipients=[f"guest{i}@example.com" for i in range(50)],
            reminders=[{"minutes_before": 60}],
        )
    standin.configure(latency=0.02)
    monkeypatch.setenv("MAX_SEND_RATE", "50")
    settings.notifier_settings.cache_clear()

    # When the database stops (fast shutdown: connections cut) while the run is sending
    results: list[dict[str, Any]] = []
    running = threading.Thread(target=lambda: results.append(handler(SCHEDULED_EVENT, FakeLambdaContext())))
    running.start()
    deadline = time.monotonic() + 60
    while len(standin.accepted()) < 40:
        assert running.is_alive() and time.monotonic() < deadline
        time.sleep(0.05)
    database.stop()
    running.join(60)

    # Then the run ends with a 503 summary of what it did and could not store
    [result] = results
    assert result["statusCode"] == 503 and result["message"].startswith("database unavailable: ")
    assert result["sent"] >= 40

    # And once the database is back and the lease has run out, nothing is lost; what went out
    # twice is what the stopped run could not store, and each such row says so
    database.start()
    for _ in range(5):
        if run(database.engine, standin.endpoint, utcnow() + timedelta(seconds=LEASE_SECONDS + 1)).claimed == 0:
            break
    log = delivery_log(database.engine)
    per_reminder = Counter(email_key(r) for r in standin.accepted())
    twice = {key for key, count in per_reminder.items() if count > 1}
    lost = len(log) - len(per_reminder)
    print(f"\ndatabase stopped mid-run: {lost} reminders lost, {len(twice)} sent twice, {result['unstored']} unstored")
    assert lost == 0 and {status for status, _ in log.values()} == {"sent"}
    assert len(twice) <= result["unstored"]
    assert all(log[key][1] == 1 for key in twice)
