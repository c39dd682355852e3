"""Local runtime figures: time from start to ready (empty data folder, then with its data kept)
and the latency of GET /events/{id} through the API port (median and p99 over N requests).

    .venv/bin/python bench/local_latency.py [-n 1000] [--database-url postgresql://...]

Without --database-url the runtime embeds its own PostgreSQL, as `make run` does on a fresh clone.
Prints figures; asserts nothing. Runs on free ports in a temporary data folder, deleted at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.runtime import LocalRuntime  # noqa: E402


def start(data_dir: Path, database_url: str | None, label: str) -> LocalRuntime:
    runtime = LocalRuntime(ROOT / "template.yaml", data_dir, database_url)
    began = time.perf_counter()
    runtime.start(timeout=300)
    print(f"start to ready, {label:<28} {time.perf_counter() - began:6.2f} s")
    return runtime


def latency(runtime: LocalRuntime, requests_count: int) -> None:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {runtime.mint_token('bench@example.com')}"
    created = session.post(
        f"{runtime.api}/events",
        json={
            "title": "Bench",
            "starts_at": (datetime.now(UTC) + timedelta(days=1)).isoformat(),
            "recipients": ["bench@example.com"],
        },
        timeout=60,
    )
    created.raise_for_status()
    url = f"{runtime.api}/events/{created.json()['id']}"
    first = time.perf_counter()
    session.get(url, timeout=60).raise_for_status()
    print(f"first GET /events/{{id}} (authorizer + warm-up) {(time.perf_counter() - first) * 1000:8.1f} ms")
    for _ in range(20):
        session.get(url, timeout=60)
    samples = []
    for _ in range(requests_count):
        began = time.perf_counter()
        reply = session.get(url, timeout=60)
        samples.append(time.perf_counter() - began)
        assert reply.status_code == 200, reply.text
    ordered = sorted(samples)
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    print(
        f"GET /events/{{id}} through the API port, {requests_count} requests: "
        f"median {statistics.median(ordered) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms"
    )
    # The console's invoke lines give the time spent in the worker (pipe round trip + handler).
    worker_ms = [
        float(line.split(" ok ")[1].split(" ms")[0])
        for line in runtime.lines[-3 * requests_count :]
        if "invoke   ApiFunction (api)" in line and " ok " in line
    ]
    if worker_ms:
        print(f"  of which in the ApiFunction worker: median {statistics.median(worker_ms):.0f} ms (whole ms)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=1000)
    parser.add_argument("--database-url", default=None)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="devserver-bench-"))
    folder.chmod(0o755)  # as root, the embedded PostgreSQL runs as another user
    try:
        runtime = start(folder / "data", args.database_url, "first run (empty data)")
        try:
            latency(runtime, args.n)
        finally:
            runtime.stop()
        runtime = start(folder / "data", args.database_url, "second run (data kept)")
        runtime.stop()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
