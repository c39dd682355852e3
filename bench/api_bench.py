"""API handler figures (issue 11), each a ratio taken side by side in one run, the two sides
alternated, medians of several runs:

- cold import of functions/api/app.py, CPU time, vs a plain import of the same dependencies
  (boto3, SQLAlchemy ORM, pg8000, pydantic, Powertools resolver/Logger/Metrics), fresh processes;
- warm in-process GET /events/{id} and POST /events through ``lambda_handler`` vs raw pg8000 running
  the very statements the handler sent (recorded from it, replayed on a connection of their own).

    .venv/bin/python bench/api_bench.py [--rounds 7] [--block 150] [--cold-runs 9]

The database is TEST_DATABASE_URL's server when set, otherwise an embedded PostgreSQL (as
``make test`` does), so no server at 127.0.0.1:5432 is needed; the bench works in a database of its
own, dropped at the end. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import statistics
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
# The embedded PostgreSQL's helper says this as root; not a figure.
warnings.filterwarnings("ignore", message="XDG_RUNTIME_DIR is not set")

# The Lambda's configuration, less what needs AWS: tracing is off outside Lambda (as Powertools
# decides for itself), metrics are on (their output is captured, not printed).
BASE_ENV = {"POWERTOOLS_SERVICE_NAME": "api", "POWERTOOLS_METRICS_NAMESPACE": "EventReminders"}

DEPENDENCIES = """
import boto3
import sqlalchemy.orm
import pg8000
import pydantic
from aws_lambda_powertools.event_handler import APIGatewayRestResolver
from aws_lambda_powertools import Logger, Metrics
"""
HANDLER = """
import importlib.util
spec = importlib.util.spec_from_file_location("app", "functions/api/app.py")
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
"""
TIMED = (
    "import sys, time\nsys.path.insert(0, 'layers/common')\n"
    "started = time.process_time()\n{body}\nprint(time.process_time() - started)\n"
)


def row(what: str, today: str, goal: str, measured: str) -> None:
    print(f"{what:<44} | {today:<28} | {goal:<8} | {measured}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def import_cpu(body: str) -> float:
    env = {**os.environ, **BASE_ENV, "DATABASE_URL": "postgresql://bench@127.0.0.1/bench"}
    out = subprocess.run(
        [sys.executable, "-c", TIMED.format(body=body)], cwd=ROOT, env=env, capture_output=True, text=True, check=True
    )
    return float(out.stdout.strip())


def cold_import(runs: int) -> None:
    deps, handler = [], []
    for _ in range(runs):
        deps.append(import_cpu(DEPENDENCIES))
        handler.append(import_cpu(HANDLER))
    ratio = statistics.median(handler) / statistics.median(deps)
    row(
        "API cold import, CPU, vs its dependencies",
        "1.8-1.9x",
        "<= 0.5x",
        f"{ratio:.2f}x ({ms(statistics.median(handler))} vs {ms(statistics.median(deps))}, {runs} processes each)",
    )


class Recorder:
    """The statements (and parameters) the handler's engine sends to pg8000."""

    def __init__(self) -> None:
        self.statements: list[tuple[str, Any]] = []

    def __call__(self, _conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        self.statements.append((statement, parameters))

    @contextlib.contextmanager
    def recording(self, engine: Any) -> Iterator[list[tuple[str, Any]]]:
        from sqlalchemy import event

        self.statements = []
        event.listen(engine, "before_cursor_execute", self)
        try:
            yield self.statements
        finally:
            event.remove(engine, "before_cursor_execute", self)


def replace_value(parameters: Any, old: Any, new: Any) -> Any:
    if isinstance(parameters, list | tuple):
        return type(parameters)(replace_value(p, old, new) for p in parameters)
    if isinstance(parameters, dict):
        return {k: replace_value(v, old, new) for k, v in parameters.items()}
    return new if parameters == old else parameters


def block(fn: Callable[[], object], n: int) -> float:
    samples = []
    for _ in range(n):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def side_by_side(handler: Callable[[], object], raw: Callable[[], object], rounds: int, n: int) -> tuple[float, ...]:
    """Alternate blocks of the two sides; the median over rounds of each side's block median and
    of the per-round ratio."""
    for _ in range(min(n, 50)):
        handler()
        raw()
    ours, theirs, ratios = [], [], []
    for _ in range(rounds):
        a = block(handler, n)
        b = block(raw, n)
        ours.append(a)
        theirs.append(b)
        ratios.append(a / b)
    return statistics.median(ratios), statistics.median(ours), statistics.median(theirs)


def warm(rounds: int, n: int) -> None:
    os.environ.update(BASE_ENV)
    # Powertools says so once per process on a GET (no metric added); not a figure.
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    from reminders import db, migrate
    from tests.support.apigw import rest_event
    from tests.support.lambdas import FakeLambdaContext, load_function
    from tests.support.postgres import test_database

    sink = io.StringIO()
    with test_database() as url:
        os.environ["DATABASE_URL"] = url
        engine = db.make_engine(url)
        migrate.upgrade(engine)
        engine.dispose()
        handler = load_function("api").lambda_handler
        context = FakeLambdaContext()
        starts = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        body = {"title": "Bench", "starts_at": starts, "recipients": ["a@example.com", "b@example.com"]}
        post_event = rest_event("POST", "/events", body=body)

        def call(event: dict[str, Any], status: int) -> dict[str, Any]:
            sink.seek(0)
            sink.truncate()
            with contextlib.redirect_stdout(sink):  # Powertools' metric lines (EMF) go to stdout
                result = handler(event, context)
            assert result["statusCode"] == status, result
            return result

        call(post_event, 201)
        recorder = Recorder()
        with recorder.recording(db.get_engine(db.api_settings)) as post_sql:
            created = call(post_event, 201)
        event_id = created["multiValueHeaders"]["Location"][0].rsplit("/", 1)[1]
        get_event = rest_event("GET", f"/events/{event_id}")
        with recorder.recording(db.get_engine(db.api_settings)) as get_sql:
            call(get_event, 200)
        post_sql, get_sql = list(post_sql), list(get_sql)

        # pg8000 on a connection of its own, set up as the handler's (URL handling, TCP_NODELAY).
        raw_engine = db.make_engine(url)
        connection = raw_engine.raw_connection()
        cursor = connection.cursor()
        recorded_id = uuid.UUID(event_id)

        def raw_post() -> None:
            new_id = uuid.uuid4()
            for statement, parameters in post_sql:
                cursor.execute(statement, replace_value(parameters, recorded_id, new_id))
            connection.commit()

        def raw_get() -> None:
            for statement, parameters in get_sql:
                cursor.execute(statement, parameters)
                cursor.fetchall()
            connection.commit()

        get_ratio, get_ours, get_raw = side_by_side(lambda: call(get_event, 200), raw_get, rounds, n)
        post_ratio, post_ours, post_raw = side_by_side(lambda: call(post_event, 201), raw_post, rounds, n)
        connection.close()
        raw_engine.dispose()
        db.dispose_engine()
    where = f"{rounds} rounds of {n}, alternated"
    row(
        "warm GET /events/{id}: handler vs raw pg8000",
        "2.1-2.7x (3.6 vs 1.3 ms)",
        "<= 1.5x",
        f"{get_ratio:.2f}x ({ms(get_ours)} vs {ms(get_raw)}, {where})",
    )
    row(
        "warm POST /events: handler vs raw pg8000",
        "3.0x (14.8 vs 4.9 ms)",
        "<= 1.5x",
        f"{post_ratio:.2f}x ({ms(post_ours)} vs {ms(post_raw)}, {where})",
    )
    print(f"  (the SQL replayed raw: GET {len(get_sql)} statement(s), POST {len(post_sql)}; each side commits)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7, help="alternated rounds per warm figure")
    parser.add_argument("--block", type=int, default=150, help="requests per side per round")
    parser.add_argument("--cold-runs", type=int, default=9, help="fresh processes per side")
    args = parser.parse_args()
    row("what", "today", "goal", "measured")
    row("-" * 44, "-" * 28, "-" * 8, "-" * 40)
    cold_import(args.cold_runs)
    warm(args.rounds, args.block)


if __name__ == "__main__":
    main()
