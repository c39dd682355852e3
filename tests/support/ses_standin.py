"""A stand-in for SES v1 ``SendRawEmail`` over real HTTP, in a child process, for fault tests.

botocore talks to it exactly as to SES (query protocol, XML answers). It records every request
with its arrival time (``time.time()``) and what it answered, and can be told to answer slowly,
to enforce an account send rate (answering ``Throttling`` beyond it, as SES does), to reject
everything (an unverified sender), to be unavailable (503), or to accept some recipients' emails
and then not answer in time (the ambiguous timeout: SES has the email, the caller never hears).

moto cannot do these (and keeps no arrival times); hand-written because it is a test double of
AWS's wire protocol, not of our code.

    python -m tests.support.ses_standin PORT
"""

from __future__ import annotations

import base64
import email
import email.policy
import json
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import pytest

ROOT = Path(__file__).resolve().parents[2]
NS = "http://ses.amazonaws.com/doc/2010-12-01/"
DEFAULTS: dict[str, Any] = {
    # Seconds before answering each request.
    "latency": 0.0,
    # SES's own account rate: a send beyond this many within the last second is throttled.
    "max_rate": None,
    # "accept", "reject" (MessageRejected: an unverified sender), "unavailable" (503), "throttle".
    "mode": "accept",
    # Recipients whose email is accepted, then answered only after hang_seconds.
    "hang": [],
    "hang_seconds": 0.0,
}


class _State:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.config = dict(DEFAULTS)
        self.requests: list[dict[str, Any]] = []
        self.recent: deque[float] = deque()

    def decide(self, to: list[str], subject: str) -> dict[str, Any]:
        with self.lock:
            now = time.time()
            config = self.config
            outcome = config["mode"]
            if outcome == "accept" and config["max_rate"]:
                while self.recent and self.recent[0] <= now - 1.0:
                    self.recent.popleft()
                if len(self.recent) >= config["max_rate"]:
                    outcome = "throttle"
                else:
                    self.recent.append(now)
            record = {
                "at": now,
                "to": to,
                "subject": subject,
                "outcome": {"accept": "accepted", "reject": "rejected", "unavailable": "unavailable"}.get(
                    outcome, "throttled"
                ),
                "message_id": f"standin-{uuid.uuid4()}" if outcome == "accept" else None,
            }
            self.requests.append(record)
            delay = config["latency"]
            if outcome == "accept" and set(to) & set(config["hang"]):
                delay = max(delay, config["hang_seconds"])
            return {**record, "delay": delay}


STATE = _State()


def _error(code: str, message: str, kind: str = "Sender") -> bytes:
    return (
        f'<ErrorResponse xmlns="{NS}"><Error><Type>{kind}</Type><Code>{code}</Code>'
        f"<Message>{message}</Message></Error><RequestId>{uuid.uuid4()}</RequestId></ErrorResponse>"
    ).encode()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def _reply(self, status: int, body: bytes, content_type: str = "text/xml") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _body(self) -> bytes:
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def do_GET(self) -> None:
        if self.path == "/_standin/requests":
            with STATE.lock:
                body = json.dumps({"requests": STATE.requests}).encode()
            self._reply(200, body, "application/json")
        else:
            self._reply(404, b"{}", "application/json")

    def do_POST(self) -> None:
        body = self._body()
        if self.path == "/_standin/config":
            with STATE.lock:
                STATE.config = {**DEFAULTS, **json.loads(body or b"{}")}
                STATE.recent.clear()
            self._reply(200, b"{}", "application/json")
            return
        if self.path == "/_standin/reset":
            with STATE.lock:
                STATE.config = dict(DEFAULTS)
                STATE.requests = []
                STATE.recent.clear()
            self._reply(200, b"{}", "application/json")
            return
        form = {key: values[0] for key, values in parse_qs(body.decode()).items()}
        if form.get("Action") != "SendRawEmail":
            self._reply(400, _error("InvalidAction", f"not supported here: {form.get('Action')}"))
            return
        to = [value for key, value in sorted(form.items()) if key.startswith("Destinations.member.")]
        raw = base64.b64decode(form.get("RawMessage.Data", ""))
        subject = email.message_from_bytes(raw, policy=email.policy.default).get("Subject", "")
        decision = STATE.decide(to, str(subject))
        if decision["delay"]:
            time.sleep(decision["delay"])
        try:
            if decision["outcome"] == "accepted":
                self._reply(
                    200,
                    (
                        f'<SendRawEmailResponse xmlns="{NS}"><SendRawEmailResult><MessageId>{decision["message_id"]}'
                        f"</MessageId></SendRawEmailResult><ResponseMetadata><RequestId>{uuid.uuid4()}</RequestId>"
                        "</ResponseMetadata></SendRawEmailResponse>"
                    ).encode(),
                )
            elif decision["outcome"] == "rejected":
                self._reply(400, _error("MessageRejected", "Email address is not verified."))
            elif decision["outcome"] == "unavailable":
                self._reply(503, _error("ServiceUnavailable", "Service is unavailable.", "Receiver"))
            else:
                self._reply(400, _error("Throttling", "Maximum sending rate exceeded."))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the caller gave up waiting (a timeout): what SES would see too


class SesStandIn:
    """The test's handle on a running stand-in."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint

    def _post(self, path: str, data: dict[str, Any]) -> None:
        request = urllib.request.Request(  # noqa: S310 (a local server)
            f"{self.endpoint}{path}", data=json.dumps(data).encode(), headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30):  # noqa: S310 (a local server)
            pass

    def configure(self, **config: Any) -> None:
        """Replace the behaviour (unnamed settings return to their defaults)."""
        self._post("/_standin/config", config)

    def reset(self) -> None:
        self._post("/_standin/reset", {})

    def requests(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"{self.endpoint}/_standin/requests", timeout=30) as response:  # noqa: S310
            return list(json.loads(response.read())["requests"])

    def accepted(self) -> list[dict[str, Any]]:
        """Every email SES would have delivered (whether or not the caller heard back)."""
        return [r for r in self.requests() if r["outcome"] == "accepted"]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def ses_standin() -> Iterator[SesStandIn]:
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.ses_standin", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    standin = SesStandIn(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                standin.requests()
                break
            except (urllib.error.URLError, ConnectionError):
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("SES stand-in did not start") from None
                time.sleep(0.05)
        yield standin
    finally:
        process.terminate()
        process.wait(timeout=10)


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", int(sys.argv[1])), _Handler)
    server.daemon_threads = True
    server.serve_forever()


if __name__ == "__main__":
    main()


@pytest.fixture(scope="module")
def standin_server() -> Iterator[SesStandIn]:
    with ses_standin() as server:
        yield server


@pytest.fixture
def standin(standin_server: SesStandIn) -> SesStandIn:
    """The stand-in, forgetting earlier tests' requests and behaviour (import it into a test module)."""
    standin_server.reset()
    return standin_server
