"""API handler figures: cold import time, and warm in-process latency of POST /events and
GET /events/{id} against a local PostgreSQL, next to raw pg8000 running the same SQL.

    .venv/bin/python bench/api_bench.py [--url postgresql://postgres@127.0.0.1:5432/postgres] [-n 1000]

Without --url (or TEST_DATABASE_URL) it starts an embedded PostgreSQL, as `make test` does.
Prints figures; asserts nothing. Uses a database of its own, dropped at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def percentiles(samples: list[float]) -> str:
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return f"median {statistics.median(ordered) * 1000:7.2f} ms   p99 {p99 * 1000:7.2f} ms"


def cold_import(runs: int) -> None:
    code = (
        "import time,sys,importlib.util;t=time.perf_counter();"
        "spec=importlib.util.spec_from_file_location('app', 'functions/api/app.py');"
        "m=importlib.util.module_from_spec(spec);spec.loader.exec_module(m);"
        "print(time.perf_counter()-t)"
    )
    env = {**os.environ, "DATABASE_URL": "postgresql://x@127.0.0.1/x", "POWERTOOLS_TRACE_DISABLED": "true"}
    samples = []
    for _ in range(runs):
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, check=True
        )
        samples.append(float(out.stdout.strip()))
    print(f"cold import of functions/api/app.py ({runs} fresh processes): {percentiles(samples)}")


def timed(fn: Callable[[], object], n: int) -> list[float]:
    for _ in range(min(50, n)):
        fn()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return samples


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", default=os.environ.get("TEST_DATABASE_URL"), help="default: an embedded PostgreSQL")
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--cold-runs", type=int, default=7)
    args = parser.parse_args()

    cold_import(args.cold_runs)

    if args.url:
        os.environ["TEST_DATABASE_URL"] = args.url
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")  # the embedded server's, not ours
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    os.environ.update(
        POWERTOOLS_TRACE_DISABLED="true", POWERTOOLS_METRICS_DISABLED="true", POWERTOOLS_LOG_LEVEL="ERROR"
    )
    from reminders import db, migrate
    from tests.support.apigw import rest_event
    from tests.support.lambdas import FakeLambdaContext, load_function
    from tests.support.postgres import test_database

    with test_database() as url:
        os.environ["DATABASE_URL"] = url
        engine = db.make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        handler = load_function("api").lambda_handler
        context = FakeLambdaContext()
        starts = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        body = {"title": "Bench", "starts_at": starts, "recipients": ["a@example.com", "b@example.com"]}
        created: list[str] = []

        def post() -> None:
            result = handler(rest_event("POST", "/events", body=body), context)
            assert result["statusCode"] == 201, result
            created.append(result["multiValueHeaders"]["Location"][0].rsplit("/", 1)[1])

        # Powertools prints a metric set once it holds 100 values, even with metrics disabled:
        # those lines go nowhere, so the figures stay readable.
        with open(os.devnull, "w") as nowhere, contextlib.redirect_stdout(nowhere):
            post_samples = timed(post, args.n)
        event_id = created[0]
        get_event = rest_event("GET", f"/events/{event_id}")

        def get() -> None:
            assert handler(get_event, context)["statusCode"] == 200

        get_samples = timed(get, args.n)

        # The driver's own connection (pg8000, set up as the handler's: same URL handling, TCP_NODELAY).
        raw_engine = db.make_engine(url)
        conn = raw_engine.raw_connection()
        cur = conn.cursor()

        def raw_post() -> None:
            eid = uuid.uuid4()
            now = datetime.now(UTC)
            due = datetime.fromisoformat(starts) - timedelta(minutes=5)
            cur.execute(
                "INSERT INTO events (id, owner, title, description, starts_at, timezone, recipients, reminders,"
                " created_at, updated_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                (
                    eid,
                    "ana@example.com",
                    "Bench",
                    None,
                    starts,
                    "UTC",
                    ["a@example.com", "b@example.com"],
                    [5],
                    now,
                    now,
                ),
            )
            cur.execute(
                "INSERT INTO notifications (event_id, recipient, minutes_before, due_at, next_attempt_at, status,"
                " created_at, updated_at) VALUES (%s, %s, 5, %s, %s, 'pending', %s, %s),"
                " (%s, %s, 5, %s, %s, 'pending', %s, %s)"
                " ON CONFLICT (event_id, recipient, minutes_before) DO UPDATE SET due_at = excluded.due_at",
                (eid, "a@example.com", due, due, now, now, eid, "b@example.com", due, due, now, now),
            )
            cur.execute(
                "UPDATE notifications SET status = 'cancelled' WHERE event_id = %s AND status = 'pending'"
                " AND (recipient, minutes_before) NOT IN ((%s, 5), (%s, 5))",
                (eid, "a@example.com", "b@example.com"),
            )
            conn.commit()

        def raw_get() -> None:
            cur.execute(
                "SELECT * FROM events WHERE id = %s AND owner = %s AND deleted_at IS NULL",
                (uuid.UUID(event_id), "ana@example.com"),
            )
            cur.fetchall()
            conn.commit()

        raw_post_samples = timed(raw_post, args.n)
        raw_get_samples = timed(raw_get, args.n)
        conn.close()
        raw_engine.dispose()
        db.dispose_engine()

    print(f"\nwarm in-process, {args.n} requests each, database {db.normalize_url(url).host or 'unix socket'}:")
    print(f"  POST /events       handler  {percentiles(post_samples)}")
    print(f"  POST /events       raw SQL  {percentiles(raw_post_samples)}")
    print(f"  GET /events/{{id}}  handler  {percentiles(get_samples)}")
    print(f"  GET /events/{{id}}  raw SQL  {percentiles(raw_get_samples)}")


if __name__ == "__main__":
    main()
