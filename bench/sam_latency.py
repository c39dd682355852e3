"""Request latency of GET /events/{id} through a running API (sam local start-api, or `make run`).

    python bench/sam_latency.py --url http://127.0.0.1:3000 --token "$(make -s token EMAIL=me@example.com)"

Creates one event, then times N sequential reads (after one untimed warm-up) and prints figures.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import requests


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="http://127.0.0.1:3000")
    parser.add_argument("--token", required=True)
    parser.add_argument("-n", type=int, default=50)
    parser.add_argument("--label", default="api")
    args = parser.parse_args()
    headers = {"Authorization": f"Bearer {args.token}"}
    starts = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    with requests.Session() as http:
        created = http.post(
            f"{args.url}/events",
            json={"title": "latency", "starts_at": starts, "recipients": ["ana@example.com"]},
            headers=headers,
            timeout=120,
        )
        created.raise_for_status()
        url = f"{args.url}/events/{created.json()['id']}"
        http.get(url, headers=headers, timeout=120).raise_for_status()
        timings = []
        for _ in range(args.n):
            began = time.perf_counter()
            http.get(url, headers=headers, timeout=120).raise_for_status()
            timings.append((time.perf_counter() - began) * 1000)
    timings.sort()
    p = lambda q: timings[min(len(timings) - 1, int(q * len(timings)))]  # noqa: E731
    print(
        f"{args.label}: GET /events/{{id}} x{args.n}: median {statistics.median(timings):.1f} ms, "
        f"p90 {p(0.9):.1f} ms, min {timings[0]:.1f} ms, max {timings[-1]:.1f} ms"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
