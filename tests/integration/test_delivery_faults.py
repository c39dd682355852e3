"""SES faults against the notifier, through real HTTP: a stand-in SES (tests/support/ses_standin.py)
that times out after accepting an email, throttles at its own account rate, or is down. A real
PostgreSQL holds the rows; time is driven through the clock each run is given."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select

from reminders import db
from reminders.models import SendRate
from tests.support.lambdas import ROOT, FakeLambdaContext, load_function
from tests.support.notifier import (
    create_event,
    metrics_emitted,
    reset_send_rate,
    rows,
    run,
)
from tests.support.ses_standin import SesStandIn, standin, standin_server  # noqa: F401 (fixtures)

SCHEDULED_EVENT = ROOT / "tests" / "events" / "eventbridge_scheduled.json"


@pytest.fixture
def ses(standin: SesStandIn, engine: Engine) -> SesStandIn:  # noqa: F811
    reset_send_rate(engine)
    return standin


def test_an_ses_call_that_times_out_after_the_request_went_out_is_recorded_before_any_resend(
    engine: Engine, ses: SesStandIn, now: datetime
) -> None:
    # Given SES accepts ana's email but answers only after the client's 1 s read timeout
    ses.configure(hang=["ana@example.com"], hang_seconds=3)
    event_id = create_event(engine, now, starts_at=(now + timedelta(minutes=3)).isoformat())

    summary = run(engine, ses.endpoint, now, ses_timeout_seconds=1)

    # Then it was asked once (nothing re-sent it on the spot), and the row says SES may have it
    assert [r["outcome"] for r in ses.requests()] == ["accepted"]
    assert (summary.sent, summary.retried, summary.unconfirmed) == (0, 1, 1)
    [row] = rows(engine, event_id)
    assert (row.status, row.attempts, row.unconfirmed_attempts) == ("pending", 1, 1)
    assert "SES may have accepted it" in (row.last_error or "")

    # When a later run retries after the backoff, the duplicate stays on the record
    ses.configure()
    assert run(engine, ses.endpoint, row.next_attempt_at, ses_timeout_seconds=1).sent == 1
    [row] = rows(engine, event_id)
    assert (row.status, row.attempts, row.unconfirmed_attempts) == ("sent", 2, 1)
    assert len(ses.accepted()) == 2


def test_ses_throttling_slows_the_shared_rate_backs_off_and_loses_nothing(
    engine: Engine, ses: SesStandIn, now: datetime
) -> None:
    # Given SES lets the account send 10 a second, while MAX_SEND_RATE claims 40
    ses.configure(max_rate=10)
    recipients = [f"guest{i}@example.com" for i in range(40)]
    event_id = create_event(
        engine,
        now,
        starts_at=(now + timedelta(hours=2)).isoformat(),
        recipients=recipients,
        reminders=[{"minutes_before": 120}],
    )

    # When runs go on until nothing is due (each one later than the last backoff)
    at, summaries = now, []
    for _ in range(10):
        summaries.append(run(engine, ses.endpoint, at, max_send_rate=40, send_concurrency=4))
        pending = [r for r in rows(engine, event_id) if r.status == "pending"]
        if not pending:
            break
        at = max(r.next_attempt_at for r in pending)

    # Then SES throttled some sends, each became a recorded retry (nothing retried behind our back)...
    outcomes = Counter(r["outcome"] for r in ses.requests())
    assert outcomes["throttled"] > 0
    assert sum(s.retried for s in summaries) == outcomes["throttled"]
    # ...the account's shared rate was slowed...
    with db.session_scope(engine) as session:
        throttled_rate = session.scalars(select(SendRate.throttled_rate)).one()
    assert throttled_rate is not None and throttled_rate < 40
    # ...and every reminder went out exactly once
    assert {r.status for r in rows(engine, event_id)} == {"sent"}
    assert Counter(to for r in ses.accepted() for to in r["to"]) == dict.fromkeys(recipients, 1)


@pytest.fixture
def notifier_handler(engine: Engine, aws_env: str, monkeypatch: pytest.MonkeyPatch) -> Callable[..., dict[str, Any]]:
    from reminders import settings
    from reminders.observability import metrics

    settings.notifier_settings.cache_clear()
    metrics.clear_metrics()
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "false")
    return load_function("notifier").lambda_handler


def test_an_ses_outage_backs_off_emits_the_retry_metric_and_loses_nothing_once_ses_is_back(
    engine: Engine,
    ses: SesStandIn,
    notifier_handler: Callable[..., dict[str, Any]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from reminders import settings
    from reminders.clock import utcnow

    recipients = [f"guest{i}@example.com" for i in range(5)]
    event_id = create_event(
        engine,
        utcnow(),
        starts_at=(utcnow() + timedelta(hours=2)).isoformat(),
        recipients=recipients,
        reminders=[{"minutes_before": 120}],
    )
    # Given SES is down (503 to everything)
    ses.configure(mode="unavailable")
    monkeypatch.setenv("AWS_ENDPOINT_URL", ses.endpoint)
    settings.notifier_settings.cache_clear()

    # When the scheduled run comes
    result = notifier_handler(json.loads(SCHEDULED_EVENT.read_text()), FakeLambdaContext())

    # Then every reminder waits for a retry, and the run says so in its metrics
    assert (result["sent"], result["retried"], result["failed"]) == (0, 5, 0)
    emitted = metrics_emitted(capsys.readouterr().out)
    assert (emitted["RemindersRetried"]["values"], emitted["RemindersSent"]["values"]) == ([5], [0])
    pending = rows(engine, event_id)
    assert {(r.status, r.attempts) for r in pending} == {("pending", 1)}

    # And once SES is back, the next due run sends every one of them, once
    ses.configure()
    assert run(engine, ses.endpoint, max(r.next_attempt_at for r in pending)).sent == 5
    assert sorted(to for r in ses.accepted() for to in r["to"]) == sorted(recipients)
