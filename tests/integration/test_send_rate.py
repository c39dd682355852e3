"""The SES account's send rate holds for all notifier runs together: overlapping runs, each in a
process of its own as Lambda runs them, against a real PostgreSQL and a stand-in SES that notes
when each request arrived. Asserts on how many sends fall in any one-second window, not on durations."""

from __future__ import annotations

import bisect
import threading
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import Engine, text

from reminders import db
from reminders.clock import utcnow
from reminders.delivery import SharedSendRate, _Stop
from tests.support.notifier import create_event, finished, notifier_process, reset_send_rate, rows, standin_env
from tests.support.ses_standin import SesStandIn, standin, standin_server  # noqa: F401 (fixtures)

RATE = 20


def busiest(times: list[float], *, seconds: float) -> int:
    """The most requests that arrived within any window of ``seconds`` ([t, t + seconds), t at a request)."""
    times = sorted(times)
    return max(bisect.bisect_left(times, t + seconds) - i for i, t in enumerate(times))


@pytest.mark.slow
def test_overlapping_runs_together_keep_to_the_account_send_rate(
    engine: Engine,
    database_url: str,
    standin: SesStandIn,  # noqa: F811
) -> None:
    # Given 120 reminders due, and an account allowed 20 emails a second
    reset_send_rate(engine)
    recipients = [f"guest{i}@example.com" for i in range(30)]
    now = utcnow()
    event_ids = [
        create_event(
            engine,
            now,
            starts_at=(now + timedelta(hours=1)).isoformat(),
            recipients=recipients,
            reminders=[{"minutes_before": 60}],
        )
        for _ in range(4)
    ]

    # When four notifier runs overlap, claiming small batches so they share the work
    env = standin_env(standin.endpoint, database_url, max_send_rate=RATE, send_concurrency=4, batch_size=10)
    processes = [notifier_process(env, timeout=60) for _ in range(4)]
    results = [finished(process) for process in processes]

    # Then every reminder went out once, and the runs shared it
    assert all(result is not None for result, _, _ in results), [stderr for _, _, stderr in results]
    assert sum(result["sent"] for result, _, _ in results if result) == 120
    assert sum(1 for result, _, _ in results if result and result["sent"]) >= 2
    requests = standin.requests()
    assert Counter((r["to"][0], r["subject"]) for r in requests if r["outcome"] == "accepted").most_common(1)[0][1] == 1
    assert all(r.status == "sent" for event_id in event_ids for r in rows(engine, event_id))
    # And no window held more requests than the account allows, give or take a quarter of a
    # second's worth: a send may start up to LATE_SLOT_SECONDS after its slot, and this loaded
    # machine delays requests on their way to the stand-in. (Four runs pacing themselves each
    # at the full rate, as before, send about four times the rate.)
    arrivals = [r["at"] for r in requests]
    assert busiest(arrivals, seconds=1) <= RATE + RATE // 4
    assert busiest(arrivals, seconds=3) <= 3 * RATE + RATE // 4


def test_sends_keep_taking_slots_while_the_next_chunk_is_reserved(engine: Engine) -> None:
    # Given a run's pacer (4 sending threads, 4 emails a second: chunks of 4 slots) with 3 slots used
    reset_send_rate(engine)
    pacer = SharedSendRate(lambda: db.session_scope(engine), max_rate=4, concurrency=4, stop=_Stop())
    pacer.expect(20)
    assert all(pacer.acquire() for _ in range(3))

    # When another run holds the shared bucket's row while this run reserves its next chunk
    # (the send taking the last slot but one starts the reservation)
    with engine.connect() as other:
        other.execute(text("SELECT * FROM send_rate FOR UPDATE"))
        reserving = threading.Thread(target=pacer.acquire)
        reserving.start()
        while not pacer._reserving:
            reserving.join(0.01)
            assert reserving.is_alive()

        # Then the chunk's last slot still goes to the next send, without waiting for the database
        assert pacer.acquire()
        assert reserving.is_alive()
        other.rollback()
    # And the reservation completes once the row is free
    reserving.join(30)
    assert not reserving.is_alive()
    assert pacer.acquire()
