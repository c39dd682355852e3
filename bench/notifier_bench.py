"""Notifier figures (issue 11), each as "today's figure | goal | measured":

- throughput: 100,000 due reminders through one notifier run, a stand-in SES with 20 ms latency;
- claim/record time per reminder: the notifier's use cases (reclaim, claim, record) against raw
  pg8000 replaying the very statements they sent (recorded from them, on the same rows in the same
  state), the two alternated over several rounds, median ratio;
- the due query (the claim, rolled back) at 1,000,000 events against 10,000, with the same number of
  due rows, samples alternated between the two databases, p50 each.

    .venv/bin/python bench/notifier_bench.py [--quick] [--moto]

``--quick`` (what `make bench` runs) takes fewer rounds and samples; ``--moto`` adds a run against
moto's SES (moto is the bottleneck there). The database is TEST_DATABASE_URL's server when set,
otherwise an embedded PostgreSQL, as `make test` does; the bench works in databases of its own,
dropped at the end. Rows are bulk-inserted with SQL (generate_series), not through the use cases:
this measures the notifier. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
import uuid
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The embedded PostgreSQL's helper says this as root; not a figure.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

from sqlalchemy import URL, Engine, create_engine, event, text  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from reminders import db, migrate, outbox  # noqa: E402
from reminders.delivery import RunSummary, run_notifier  # noqa: E402
from reminders.mailer import SesMailer, ses_client  # noqa: E402
from reminders.models import NotificationStatus  # noqa: E402
from reminders.settings import NotifierSettings  # noqa: E402
from tests.support import aws  # noqa: E402
from tests.support.postgres import _admin_url  # noqa: E402

BATCH = 500
RECORD_EVERY = 100
# The sending threads (the setting's maximum): at 20 ms a call, 64 threads allow 3,200 sends a second.
CONCURRENCY = 64
UNSUBSCRIBE_KEY = "notifier-bench-unsubscribe-key-0123456789"


def row(what: str, today: str, goal: str, measured: str) -> None:
    print(f"{what:<44} | {today:<28} | {goal:<8} | {measured}", flush=True)


class StandInSes:
    """An SES client that accepts every message after a fixed latency."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def send_raw_email(self, **_: Any) -> dict[str, str]:
        if self.latency:
            time.sleep(self.latency)
        return {"MessageId": uuid.uuid4().hex}


@contextmanager
def own_database(admin_url: URL) -> Iterator[str]:
    name = f"notifier_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def migrated(url: str) -> Engine:
    engine = db.make_engine(url, pool_size=4, socket_timeout=900)
    migrate.upgrade(engine)
    return engine


def reset(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE notifications, events RESTART IDENTITY CASCADE"))


def insert_due(engine: Engine, count: int, due_at: datetime) -> None:
    """``count`` events starting an hour after ``due_at``, one recipient and a 60-minute reminder
    each: ``count`` reminders due at ``due_at``. Notification ids restart at 1, in event order."""
    with engine.begin() as connection:
        connection.execute(
            text(
                """
                INSERT INTO events (id, owner, title, description, starts_at, timezone, recipients, reminders,
                                    created_at, updated_at)
                SELECT gen_random_uuid(), 'bench@example.com', 'Bench event ' || g, 'Room ' || g,
                       :starts, 'Europe/Berlin', ARRAY['guest' || g || '@example.com'], ARRAY[60], :now, :now
                FROM generate_series(1, :count) AS g
                """
            ),
            {"starts": due_at + timedelta(hours=1), "now": due_at, "count": count},
        )
        connection.execute(
            text(
                """
                INSERT INTO notifications (event_id, occurrence_at, recipient, minutes_before, due_at,
                                           next_attempt_at, status, created_at, updated_at)
                SELECT id, starts_at, recipients[1], 60, starts_at - interval '60 minutes',
                       starts_at - interval '60 minutes', 'pending', :now, :now
                FROM events ORDER BY title
                """
            ),
            {"now": due_at},
        )
        connection.execute(text("ANALYZE events, notifications"))


def notifier_run(engine: Engine, client: Any, *, seconds: float | None = None) -> tuple[RunSummary, float]:
    settings = NotifierSettings(
        database_url="postgresql://unused",
        batch_size=BATCH,
        max_send_rate=1_000_000.0,
        send_concurrency=CONCURRENCY,
        record_every=RECORD_EVERY,
        record_reserve_seconds=0,
        # As deployed: every reminder carries its recipient's unsubscribe link and headers.
        public_api_url="https://api.example.com/Prod",
        unsubscribe_keys=UNSUBSCRIBE_KEY,
    )
    mailer = SesMailer(aws.SENDER, client)
    started = time.perf_counter()
    deadline = started + seconds if seconds else None

    def time_left() -> float:
        return deadline - time.perf_counter() if deadline else float("inf")

    summary = run_notifier(lambda: db.session_scope(engine), mailer, settings, time_left=time_left)
    return summary, time.perf_counter() - started


def throughput(engine: Engine, count: int) -> None:
    reset(engine)
    insert_due(engine, count, datetime.now(UTC))
    summary, elapsed = notifier_run(engine, StandInSes(0.02))
    if summary.sent != count:  # a figure for emails that never went out would be a lie
        raise SystemExit(f"notifier bench: {summary.sent:,} of {count:,} sent: {summary.as_dict()}")
    row(
        f"notifier, {count:,} due, stand-in SES 20 ms",
        "1,136/s (88 s)",
        ">= 1,700/s",
        f"{summary.sent / elapsed:,.0f}/s ({summary.sent:,} sent in {elapsed:.1f} s, {CONCURRENCY} threads)",
    )


def moto_throughput(engine: Engine, count: int, seconds: float) -> None:
    with aws.moto_server() as endpoint:
        aws.verify_sender(endpoint)
        client = ses_client(NotifierSettings(database_url="postgresql://unused", aws_endpoint_url=endpoint))
        reset(engine)
        insert_due(engine, count, datetime.now(UTC))
        summary, elapsed = notifier_run(engine, client, seconds=seconds)
    print(f"  (moto's SES instead: {summary.sent / elapsed:,.0f}/s, {summary.sent:,} sent in {elapsed:.1f} s)")


class Recording:
    """Every statement (with its parameters) and commit an engine sends, in order."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.steps: list[tuple[str, Any] | None] = []

    def _statement(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.steps.append((statement, parameters))

    def _commit(self, _conn: Any) -> None:
        self.steps.append(None)

    def __enter__(self) -> Recording:
        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        return self

    def __exit__(self, *_: Any) -> None:
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)


def use_case_loop(engine: Engine) -> int:
    """The notifier's database work alone: reclaim, claim and record, as a run does them (results
    stored every RECORD_EVERY), no mailer, no threads. Returns the reminders done."""
    done = 0
    while True:
        now = datetime.now(UTC)
        with db.session_scope(engine) as session:
            outbox.reclaim_expired_leases(session, now, limit=BATCH)
            claim = outbox.claim_due_notifications(
                session, now, limit=BATCH, lease_seconds=120, max_attempts=5, start_grace_seconds=60
            )
        if not claim.to_send:
            return done
        results = [
            outbox.DeliveryResult(c.id, c.attempts, NotificationStatus.SENT, message_id=uuid.uuid4().hex, sent_at=now)
            for c in claim.to_send
        ]
        for start in range(0, len(results), RECORD_EVERY):
            with db.session_scope(engine) as session:
                outbox.record_results(session, results[start : start + RECORD_EVERY], now)
        done += len(results)


def replay(cursor: Any, connection: Any, steps: list[tuple[str, Any] | None]) -> None:
    for step in steps:
        if step is None:
            connection.commit()
            continue
        statement, parameters = step
        cursor.execute(statement, parameters)
        if cursor.description:
            cursor.fetchall()


def database_time(engine: Engine, url: str, count: int, rounds: int) -> None:
    # The driver's own connection, set up as the notifier's (URL handling, TCP_NODELAY).
    raw_engine = db.make_engine(url)
    connection = raw_engine.raw_connection()
    cursor = connection.cursor()
    due_at = datetime.now(UTC) - timedelta(minutes=1)
    ours, theirs, ratios = [], [], []
    try:
        for _ in range(rounds):
            reset(engine)
            insert_due(engine, count, due_at)
            with Recording(engine) as recording:
                started = time.perf_counter()
                done = use_case_loop(engine)
                elapsed = time.perf_counter() - started
            # The same rows, in the same state, and the same statements with the same parameters.
            reset(engine)
            insert_due(engine, count, due_at)
            started = time.perf_counter()
            replay(cursor, connection, recording.steps)
            raw_elapsed = time.perf_counter() - started
            ours.append(elapsed / done)
            theirs.append(raw_elapsed / done)
            ratios.append(elapsed / raw_elapsed)
    finally:
        connection.close()
        raw_engine.dispose()
    row(
        "claim/record time per reminder vs raw pg8000",
        "2.0x (259 vs 129 us)",
        "<= 1.2x",
        f"{statistics.median(ratios):.2f}x ({statistics.median(ours) * 1e6:.0f} vs"
        f" {statistics.median(theirs) * 1e6:.0f} us, {count:,} due, {rounds} rounds alternated)",
    )


def fill_history(engine: Engine, events: int, due: int, now: datetime) -> None:
    """``events`` events, each with one reminder: ``due`` of them due now, the rest split between
    history (sent, up to 25 days ago) and the future (pending, up to 17 days ahead), as in a
    long-lived system."""
    reset(engine)
    with engine.begin() as connection:
        connection.execute(
            text(
                """
                INSERT INTO events (id, owner, title, starts_at, timezone, recipients, reminders,
                                    created_at, updated_at)
                SELECT gen_random_uuid(), 'owner' || mod(g, 1000) || '@example.com', 'Event ' || g,
                       CAST(:now AS timestamptz) + (mod(g::bigint * 7919, 1000) - 600) * interval '1 hour', 'UTC',
                       ARRAY['guest' || g || '@example.com'], ARRAY[5], :now, :now
                FROM generate_series(1, :count) AS g
                """
            ),
            {"now": now, "count": events},
        )
        connection.execute(
            text(
                """
                INSERT INTO notifications (event_id, occurrence_at, recipient, minutes_before, due_at,
                                           next_attempt_at, status, sent_at, attempts, created_at, updated_at)
                SELECT id, starts_at, recipients[1], 5, starts_at - interval '5 minutes',
                       starts_at - interval '5 minutes',
                       CASE WHEN starts_at < :now THEN 'sent' ELSE 'pending' END,
                       CASE WHEN starts_at < :now THEN starts_at - interval '5 minutes' END,
                       CASE WHEN starts_at < :now THEN 1 ELSE 0 END, :now, :now
                FROM events
                """
            ),
            {"now": now},
        )
        # Exactly ``due`` reminders due now (their events have not started: none expires).
        connection.execute(
            text(
                """
                UPDATE notifications SET next_attempt_at = CAST(:now AS timestamptz) - interval '1 minute'
                WHERE id IN (SELECT id FROM notifications WHERE status = 'pending' ORDER BY id LIMIT :due)
                """
            ),
            {"now": now, "due": due},
        )
        connection.execute(text("ANALYZE events, notifications"))


def claim_statement(engine: Engine, now: datetime) -> tuple[str, Any]:
    """The claim as the notifier sends it (recorded from the use case, then rolled back)."""
    with Recording(engine) as recording, engine.connect() as connection, Session(bind=connection) as session:
        outbox.claim_due_notifications(
            session, now, limit=BATCH, lease_seconds=120, max_attempts=5, start_grace_seconds=60
        )
        session.rollback()
    statements = [step for step in recording.steps if step is not None]
    return statements[-1]


# The claim's selection of due rows, as claim_due_notifications writes it (the subquery it locks with).
DUE_QUERY = (
    "SELECT notifications.id FROM notifications"
    " WHERE notifications.status = 'pending' AND notifications.next_attempt_at <= %s"
    " ORDER BY notifications.next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED"
)


def sample(connection: Any, statement: str, parameters: Any) -> tuple[float, int]:
    cursor = connection.cursor()
    started = time.perf_counter()
    cursor.execute(statement, parameters)
    rows = len(cursor.fetchall())
    elapsed = time.perf_counter() - started
    connection.rollback()
    return elapsed, rows


def due_query(small: Engine, large: Engine, samples: int, due: int) -> None:
    now = datetime.now(UTC)
    sizes = {small: 10_000, large: 1_000_000}
    for engine, events in sizes.items():
        fill_history(engine, events, due, now)
    claim, claim_parameters = claim_statement(small, now)
    queries = {"due": (DUE_QUERY, (now, due)), "claim": (claim, claim_parameters)}
    timings: dict[tuple[str, Engine], list[float]] = {(q, e): [] for q in queries for e in sizes}
    connections = {engine: engine.raw_connection() for engine in sizes}
    try:
        for name, (statement, parameters) in queries.items():
            for engine in sizes:  # warm both, and check both select the same rows
                assert sample(connections[engine], statement, parameters)[1] == due, (name, sizes[engine])
            for _ in range(samples):
                for engine in sizes:
                    timings[name, engine].append(sample(connections[engine], statement, parameters)[0])
        plans = {}
        for name, (statement, parameters) in queries.items():
            cursor = connections[large].cursor()
            cursor.execute("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + statement, parameters)
            plans[name] = [line for (line,) in cursor.fetchall()]
            connections[large].rollback()
    finally:
        for connection in connections.values():
            connection.close()
    p50 = {key: statistics.median(values) for key, values in timings.items()}
    row(
        "due query p50, 1,000,000 events vs 10,000",
        "not measured (0.8 vs 5.6 ms)",
        "<= 1.5x",
        f"{p50['due', large] / p50['due', small]:.2f}x ({p50['due', large] * 1000:.2f} vs"
        f" {p50['due', small] * 1000:.2f} ms, {due} due in each, {samples} samples alternated)",
    )
    print(
        f"  (the whole claim, {due} rows, rolled back: {p50['claim', large] / p50['claim', small]:.2f}x,"
        f" {p50['claim', large] * 1000:.1f} vs {p50['claim', small] * 1000:.1f} ms)"
    )
    if os.environ.get("BENCH_PLAN"):
        for name, lines in plans.items():
            print(f"  plan of the {name} at 1,000,000 events:")
            print("\n".join(f"    {line}" for line in lines))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer rounds and samples (make bench)")
    parser.add_argument("--moto", action="store_true", help="also a run against moto's SES")
    parser.add_argument("--sections", default="throughput,db,due", help="comma-separated subset to run")
    parser.add_argument("--count", type=int, default=100_000, help="due reminders in the throughput run")
    args = parser.parse_args()
    sections = set(args.sections.split(","))
    rounds, samples = (3, 60) if args.quick else (7, 200)

    with _admin_url(os.environ.get("TEST_DATABASE_URL")) as admin_url:
        with own_database(admin_url) as url:
            engine = migrated(url)
            try:
                if "throughput" in sections:
                    throughput(engine, args.count)
                    if args.moto:
                        moto_throughput(engine, 10_000, 60)
                if "db" in sections:
                    database_time(engine, url, 10_000, rounds)
            finally:
                engine.dispose()
        if "due" in sections:
            with own_database(admin_url) as small_url, own_database(admin_url) as large_url:
                small, large = migrated(small_url), migrated(large_url)
                try:
                    due_query(small, large, samples, due=BATCH)
                finally:
                    small.dispose()
                    large.dispose()


if __name__ == "__main__":
    main()
