"""Notifier figures: throughput at 10,000 and 100,000 due reminders (a stand-in SES with a fixed
20 ms latency, and moto); database time per reminder next to a raw SQL claim loop; and the due
query's latency at 10,000 and 1,000,000 events, with the plan that shows ix_notifications_due.

    .venv/bin/python bench/notifier_bench.py [--url postgresql://postgres@127.0.0.1:5432/postgres]
        [--moto-seconds 60] [--skip-moto] [--skip-million] [--sections throughput,db,due]

Prints figures; asserts nothing. Uses a database of its own, dropped at the end. Rows are
bulk-inserted with SQL (generate_series), not through the use cases: this measures the notifier.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, create_engine, event, text  # noqa: E402

from reminders import db, migrate, outbox  # noqa: E402
from reminders.delivery import RunSummary, run_notifier  # noqa: E402
from reminders.mailer import SesMailer, ses_client  # noqa: E402
from reminders.models import NotificationStatus  # noqa: E402
from reminders.settings import NotifierSettings  # noqa: E402
from tests.support import aws  # noqa: E402

BATCH = 500


class StandInSes:
    """An SES client that accepts every message after a fixed latency."""

    def __init__(self, latency: float) -> None:
        self.latency = latency

    def send_raw_email(self, **_: Any) -> dict[str, str]:
        if self.latency:
            time.sleep(self.latency)
        return {"MessageId": uuid.uuid4().hex}


class DbTimer:
    """Wall time spent inside the database driver's execute calls, across threads."""

    def __init__(self, engine: Engine) -> None:
        self.total = 0.0
        self.statements = 0
        self._local = threading.local()
        self._lock = threading.Lock()
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "after_cursor_execute", self._after)

    def _before(self, *args: Any) -> None:
        self._local.start = time.perf_counter()

    def _after(self, *args: Any) -> None:
        elapsed = time.perf_counter() - self._local.start
        with self._lock:
            self.total += elapsed
            self.statements += 1


@contextmanager
def own_database(admin_url: str) -> Iterator[str]:
    name = f"notifier_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(db.normalize_url(admin_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield db.normalize_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def reset(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("TRUNCATE notifications, events RESTART IDENTITY CASCADE"))


def insert_due(engine: Engine, count: int, now: datetime) -> None:
    """``count`` events starting in an hour, one recipient and a 60-minute reminder: all due now."""
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
            {"starts": now + timedelta(hours=1), "now": now, "count": count},
        )
        connection.execute(
            text(
                """
                INSERT INTO notifications (event_id, occurrence_at, recipient, minutes_before, due_at,
                                           next_attempt_at, status, created_at, updated_at)
                SELECT id, starts_at, recipients[1], 60, starts_at - interval '60 minutes',
                       starts_at - interval '60 minutes', 'pending', :now, :now
                FROM events
                """
            ),
            {"now": now},
        )
        connection.execute(text("ANALYZE events, notifications"))


def notifier_run(
    engine: Engine, client: Any, *, concurrency: int, seconds: float | None = None
) -> tuple[RunSummary, float]:
    settings = NotifierSettings(
        database_url="postgresql://unused",
        batch_size=BATCH,
        max_send_rate=1_000_000.0,
        send_concurrency=concurrency,
        record_every=100,
        record_reserve_seconds=0,
    )
    mailer = SesMailer(aws.SENDER, client)
    started = time.perf_counter()
    deadline = started + seconds if seconds else None

    def time_left() -> float:
        return deadline - time.perf_counter() if deadline else float("inf")

    summary = run_notifier(lambda: db.session_scope(engine), mailer, settings, time_left=time_left)
    return summary, time.perf_counter() - started


def throughput(engine: Engine, moto_endpoint: str | None, moto_seconds: float) -> None:
    print("\n== Notifier throughput (one run, batches of 500, results stored every 100) ==")
    for count in (10_000, 100_000):
        for name, client, concurrency, seconds in [
            ("stand-in SES, 20 ms latency, 32 threads", StandInSes(0.02), 32, None),
            ("moto server, 8 threads", None, 8, moto_seconds),
        ]:
            if client is None:
                if moto_endpoint is None:
                    continue
                settings = NotifierSettings(database_url="postgresql://unused", aws_endpoint_url=moto_endpoint)
                client = ses_client(settings)
            reset(engine)
            now = datetime.now(UTC)
            insert_due(engine, count, now)
            summary, elapsed = notifier_run(engine, client, concurrency=concurrency, seconds=seconds)
            bounded = f" (stopped after {seconds:.0f} s)" if seconds and summary.sent < count else ""
            print(
                f"{count:>7,} due, {name:<42} {summary.sent / elapsed:8.0f} reminders/s"
                f"   sent {summary.sent:,} in {elapsed:.1f} s{bounded}"
            )


def database_cost(engine: Engine, url: str, count: int = 20_000) -> None:
    print(f"\n== Database time per reminder ({count:,} due, batches of {BATCH}) ==")
    reset(engine)
    insert_due(engine, count, datetime.now(UTC))
    timer = DbTimer(engine)
    summary, elapsed = notifier_run(engine, StandInSes(0), concurrency=4)
    event.remove(engine, "before_cursor_execute", timer._before)
    event.remove(engine, "after_cursor_execute", timer._after)
    print(
        f"notifier run, SES stand-in with no latency, 4 threads: {elapsed / summary.sent * 1e6:7.1f} us/reminder"
        f" in all ({timer.total / summary.sent * 1e6:.1f} us in {timer.statements} statements, GIL shared with"
        " the sending threads)"
    )

    # The notifier's own database work alone: its claim and record use cases, no mailer, no threads.
    reset(engine)
    insert_due(engine, count, datetime.now(UTC))
    timer = DbTimer(engine)
    done = 0
    started = time.perf_counter()
    while True:
        now = datetime.now(UTC)
        with db.session_scope(engine) as session:
            outbox.reclaim_expired_leases(session, now, limit=BATCH)
            claim = outbox.claim_due_notifications(
                session, now, limit=BATCH, lease_seconds=120, max_attempts=5, start_grace_seconds=60
            )
        if not claim.to_send:
            break
        results = [
            outbox.DeliveryResult(c.id, c.attempts, NotificationStatus.SENT, message_id=uuid.uuid4().hex, sent_at=now)
            for c in claim.to_send
        ]
        for start in range(0, len(results), 100):
            with db.session_scope(engine) as session:
                outbox.record_results(session, results[start : start + 100], now)
        done += len(results)
    elapsed = time.perf_counter() - started
    event.remove(engine, "before_cursor_execute", timer._before)
    event.remove(engine, "after_cursor_execute", timer._after)
    print(
        f"notifier use cases (reclaim + claim + record, SQLAlchemy): {elapsed / done * 1e6:7.1f} us/reminder"
        f" ({timer.total / done * 1e6:.1f} us in {timer.statements} statements)"
    )

    # The floor: the same claim and a set-based "mark sent", straight through pg8000, no ORM.
    reset(engine)
    insert_due(engine, count, datetime.now(UTC))
    # The driver's own connection (pg8000, set up as the notifier's: same URL handling, TCP_NODELAY).
    raw_engine = db.make_engine(url)
    connection = raw_engine.raw_connection()
    cursor = connection.cursor()
    done = 0
    started = time.perf_counter()
    while True:
        cursor.execute(
            """
            WITH due AS (SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= now()
                         ORDER BY next_attempt_at LIMIT %s FOR UPDATE SKIP LOCKED)
            UPDATE notifications n SET status = 'sending', attempts = n.attempts + 1,
                   lease_until = now() + interval '120 seconds'
            FROM due, events e WHERE n.id = due.id AND e.id = n.event_id
            RETURNING n.id, n.attempts, n.recipient, e.title, e.starts_at, e.timezone
            """,
            (BATCH,),
        )
        rows = cursor.fetchall()
        connection.commit()
        if not rows:
            break
        ids = [row[0] for row in rows]
        for start in range(0, len(ids), 100):
            chunk = ids[start : start + 100]
            cursor.execute(
                "UPDATE notifications SET status = 'sent', sent_at = now(), message_id = 'x', lease_until = NULL"
                " WHERE id = ANY(%s)",
                (chunk,),
            )
            connection.commit()
        done += len(rows)
    elapsed = time.perf_counter() - started
    connection.close()
    raw_engine.dispose()
    print(f"raw SQL claim loop (pg8000 alone, same statement shapes): {elapsed / done * 1e6:7.1f} us/reminder")


def due_query(engine: Engine, skip_million: bool) -> None:
    print("\n== Due query latency (claim-shaped SELECT ... FOR UPDATE SKIP LOCKED, LIMIT 500) ==")
    query = text(
        "SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= :now"
        " ORDER BY next_attempt_at LIMIT 500 FOR UPDATE SKIP LOCKED"
    )
    # (events, share of them that are daily series planned over the 35-day horizon)
    for count, recurring in ((10_000, 0), (1_000_000, 0), (1_000_000, 10)):
        if count > 10_000 and skip_million:
            continue
        reset(engine)
        now = datetime.now(UTC)
        with engine.begin() as connection:
            # Mostly history (sent, days ago) and future reminders, like a long-lived system; 1% due.
            connection.execute(
                text(
                    """
                    INSERT INTO events (id, owner, title, starts_at, timezone, recipients, reminders,
                                        recurrence, planned_until, created_at, updated_at)
                    SELECT gen_random_uuid(), 'bench@example.com', 'Event ' || g,
                           CASE WHEN mod(g, 100) < :recurring
                                THEN CAST(:now AS timestamptz) - interval '5 days' + mod(g, 1440) * interval '1 minute'
                                ELSE CAST(:now AS timestamptz) + (mod(g, 1000) - 600) * interval '1 hour' END,
                           'UTC', ARRAY['guest' || g || '@example.com'], ARRAY[5],
                           CASE WHEN mod(g, 100) < :recurring THEN ARRAY['RRULE:FREQ=DAILY'] END,
                           CASE WHEN mod(g, 100) < :recurring THEN CAST(:now AS timestamptz) + interval '35 days' END,
                           :now, :now
                    FROM generate_series(1, :count) AS g
                    """
                ),
                {"now": now, "count": count, "recurring": recurring},
            )
            # One row per occurrence: a one-off event's start, a series' days up to its horizon.
            connection.execute(
                text(
                    """
                    INSERT INTO notifications (event_id, occurrence_at, recipient, minutes_before, due_at,
                                               next_attempt_at, status, sent_at, attempts, created_at, updated_at)
                    SELECT id, o.at, recipients[1], 5, o.at - interval '5 minutes', o.at - interval '5 minutes',
                           CASE WHEN o.at < :now THEN 'sent' ELSE 'pending' END,
                           CASE WHEN o.at < :now THEN o.at - interval '5 minutes' END,
                           CASE WHEN o.at < :now THEN 1 ELSE 0 END, :now, :now
                    FROM events,
                         LATERAL (SELECT starts_at + k * interval '1 day' AS at
                                  FROM generate_series(0, CASE WHEN recurrence IS NULL THEN 0 ELSE 39 END) AS k) AS o
                    """
                ),
                {"now": now},
            )
            # 1% due right now.
            connection.execute(
                text(
                    "UPDATE notifications SET next_attempt_at = CAST(:now AS timestamptz) - interval '1 minute'"
                    " WHERE status = 'pending' AND mod(id, 100) = 0"
                ),
                {"now": now},
            )
            connection.execute(text("ANALYZE events, notifications"))
        samples = []
        with engine.connect() as connection:
            for _ in range(200):
                started = time.perf_counter()
                connection.execute(query, {"now": now}).fetchall()
                samples.append(time.perf_counter() - started)
                connection.rollback()
            plan = connection.execute(text("EXPLAIN (ANALYZE, BUFFERS, COSTS OFF) " + str(query)), {"now": now})
            plan_lines = [row[0] for row in plan]
            connection.rollback()
            due = connection.execute(
                text("SELECT count(*) FROM notifications WHERE status = 'pending' AND next_attempt_at <= :now"),
                {"now": now},
            ).scalar_one()
            rows = connection.execute(text("SELECT count(*) FROM notifications")).scalar_one()
        ordered = sorted(samples)
        print(
            f"{count:>9,} events, {recurring}% daily series ({rows:,} reminder rows, {due:,} due):"
            f" median {statistics.median(ordered) * 1000:.2f} ms,"
            f" p99 {ordered[int(len(ordered) * 0.99) - 1] * 1000:.2f} ms"
            f"   uses ix_notifications_due: {any('ix_notifications_due' in line for line in plan_lines)}"
        )
        for line in plan_lines:
            print(f"    {line}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--moto-seconds", type=float, default=60.0, help="cap on each moto run")
    parser.add_argument("--skip-moto", action="store_true")
    parser.add_argument("--skip-million", action="store_true")
    parser.add_argument("--sections", default="throughput,db,due", help="comma-separated subset to run")
    args = parser.parse_args()
    sections = set(args.sections.split(","))

    with own_database(args.url) as url:
        engine = db.make_engine(url, pool_size=4, socket_timeout=900)
        migrate.upgrade(engine)
        try:
            if "throughput" in sections and args.skip_moto:
                throughput(engine, None, args.moto_seconds)
            elif "throughput" in sections:
                with aws.moto_server() as endpoint:
                    aws.verify_sender(endpoint)
                    throughput(engine, endpoint, args.moto_seconds)
            if "db" in sections:
                database_cost(engine, url)
            if "due" in sections:
                due_query(engine, args.skip_million)
        finally:
            engine.dispose()


if __name__ == "__main__":
    main()
