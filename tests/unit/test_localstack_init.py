"""infra/localstack/lambda-init/init, our Lambda runtime init for LocalStack, against the two sides it
speaks to: LocalStack's executor endpoint (served here, recording what the init posts) and a runtime
on the Lambda Runtime API. The runtime here is a short script; the real one (awslambdaric in the
python3.13 image) runs in `make test-localstack`, where LocalStack starts the init itself."""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests

ROOT = Path(__file__).resolve().parents[2]
INIT = ROOT / "infra/localstack/lambda-init/init"
WAIT = 30  # seconds any one answer may take; no test asserts a duration

# A runtime as awslambdaric behaves on the Runtime API: next, then response or error, forever.
RUNTIME = """
import json, os, sys, time, urllib.request
api = "http://" + os.environ["AWS_LAMBDA_RUNTIME_API"] + "/2018-06-01/runtime/invocation/"
print("runtime started", flush=True)
while True:
    with urllib.request.urlopen(api + "next") as r:
        request_id, event = r.headers["Lambda-Runtime-Aws-Request-Id"], json.loads(r.read())
    print("handling", event["do"], flush=True)
    if event["do"] == "crash":
        sys.exit(3)
    if event["do"] == "hang":
        time.sleep(600)
    outcome, body = ("error", {"errorType": "ValueError", "errorMessage": "bad"}) if event["do"] == "fail" else (
        "response", {"echo": event, "deadline_ms": r.headers["Lambda-Runtime-Deadline-Ms"], "env": sorted(os.environ)})
    urllib.request.urlopen(urllib.request.Request(api + request_id + "/" + outcome, data=json.dumps(body).encode()))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalStackSide:
    """LocalStack's executor endpoint: /status/<id>/ready|error and /invocations/<id>/logs|response|error."""

    def __init__(self) -> None:
        self.posts: queue.Queue[tuple[str, bytes]] = queue.Queue()
        posts = self.posts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                posts.put((self.path, self.rfile.read(int(self.headers.get("Content-Length") or 0))))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/_localstack_lambda/executor-1"

    def next_post(self) -> tuple[str, bytes]:
        return self.posts.get(timeout=WAIT)


@pytest.fixture
def started(tmp_path: Path) -> Iterator[tuple[LocalStackSide, str]]:
    localstack = LocalStackSide()
    runtime = tmp_path / "bootstrap"
    runtime.write_text(f"#!{sys.executable}\n{RUNTIME}")
    runtime.chmod(0o755)
    interop = free_port()
    env = {
        **os.environ,
        "LOCALSTACK_RUNTIME_ENDPOINT": localstack.url,
        "LOCALSTACK_RUNTIME_ID": "executor-1",
        "LOCALSTACK_INTEROP_PORT": str(interop),
        "REMINDERS_INIT_RUNTIME_API": f"127.0.0.1:{free_port()}",
        "AWS_LAMBDA_FUNCTION_TIMEOUT": "2",
        "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256",
        "LAMBDA_TASK_ROOT": str(tmp_path),
    }
    init = subprocess.Popen([sys.executable, str(INIT), str(runtime)], env=env)
    try:
        assert localstack.next_post() == ("/_localstack_lambda/executor-1/status/executor-1/ready", b"")
        yield localstack, f"http://127.0.0.1:{interop}/invoke"
    finally:
        init.kill()
        init.wait()
        localstack.server.shutdown()


def invoke(localstack: LocalStackSide, url: str, request_id: str, event: dict[str, Any]) -> tuple[str, Any, str]:
    """What LocalStack sends and what it gets back: (outcome, payload, logs)."""
    payload = {"invoke-id": request_id, "invoked-function-arn": "arn:fn", "payload": json.dumps(event), "trace-id": "t"}
    answer = requests.post(url, json=payload, timeout=WAIT)
    assert (answer.status_code, answer.text) == (200, "OK")
    logs_path, logs = localstack.next_post()
    assert logs_path == f"/_localstack_lambda/executor-1/invocations/{request_id}/logs"
    path, body = localstack.next_post()
    prefix = f"/_localstack_lambda/executor-1/invocations/{request_id}/"
    assert path.startswith(prefix), path
    return path.removeprefix(prefix), json.loads(body), json.loads(logs)["logs"]


def test_an_invocation_reaches_the_runtime_and_its_answer_and_logs_reach_localstack(
    started: tuple[LocalStackSide, str],
) -> None:
    localstack, url = started
    outcome, payload, logs = invoke(localstack, url, "req-1", {"do": "echo"})
    assert outcome == "response"
    assert payload["echo"] == {"do": "echo"} and int(payload["deadline_ms"]) > 0
    assert logs.startswith("START RequestId: req-1 Version: $LATEST\n")
    assert "handling echo\n" in logs and "END RequestId: req-1\n" in logs and "REPORT RequestId: req-1\t" in logs
    assert invoke(localstack, url, "req-2", {"do": "echo"})[0] == "response"  # the same runtime, warm


def test_a_function_error_is_reported_as_an_error(started: tuple[LocalStackSide, str]) -> None:
    localstack, url = started
    outcome, payload, _ = invoke(localstack, url, "req-1", {"do": "fail"})
    assert (outcome, payload["errorType"]) == ("error", "ValueError")


def test_a_timed_out_invocation_gets_lambdas_error_and_a_fresh_runtime(started: tuple[LocalStackSide, str]) -> None:
    localstack, url = started
    outcome, payload, logs = invoke(localstack, url, "req-1", {"do": "hang"})
    assert outcome == "error"
    assert payload["errorMessage"].endswith("req-1 Task timed out after 2.00 seconds")
    assert "Task timed out" in logs
    assert invoke(localstack, url, "req-2", {"do": "echo"})[0] == "response"


def test_a_runtime_that_exits_fails_its_invocation_and_is_started_again(started: tuple[LocalStackSide, str]) -> None:
    localstack, url = started
    outcome, payload, _ = invoke(localstack, url, "req-1", {"do": "crash"})
    assert (outcome, payload["errorType"]) == ("error", "Runtime.ExitError")
    assert "exit status 3" in payload["errorMessage"]
    assert invoke(localstack, url, "req-2", {"do": "echo"})[0] == "response"


def test_the_function_never_sees_localstacks_variables(started: tuple[LocalStackSide, str]) -> None:
    localstack, url = started
    _, payload, _ = invoke(localstack, url, "req-1", {"do": "echo"})
    assert "AWS_LAMBDA_RUNTIME_API" in payload["env"]
    assert not [v for v in payload["env"] if v.startswith(("LOCALSTACK_", "REMINDERS_INIT_"))], payload["env"]
