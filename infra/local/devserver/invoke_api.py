"""The Lambda Invoke API (what `sam local start-lambda` serves), functions named by logical id."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from http.server import BaseHTTPRequestHandler
from typing import Any

from devserver import console
from devserver.gateway import log_invocation, read_body
from devserver.template import ACCOUNT_ID, REGION
from devserver.workers import FunctionPool

_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")


def handler_class(pools: dict[str, FunctionPool]) -> type[BaseHTTPRequestHandler]:
    class InvokeHandler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body go out in two writes; no 40 ms delayed-ACK stall
        server_version = "devserver"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _client_error(self, status: int, kind: str, message: str) -> None:
            body = json.dumps({"Type": "User", "message": message}).encode()
            self._reply(status, body, {"x-amzn-ErrorType": kind})

        def do_POST(self) -> None:
            started = time.monotonic()
            raw = read_body(self)
            if raw is None:
                self._client_error(413, "RequestTooLargeException", "Request must be smaller than 10 MiB")
                return
            match = _PATH.match(self.path.split("?")[0])
            if not match:
                self._client_error(404, "UnknownOperationException", f"Unknown operation {self.path}")
                return
            # FunctionName may be a name, a partial ARN or a full ARN.
            name = match.group("name").split(":function:")[-1].split(":")[0]
            pool = pools.get(name)
            if pool is None:
                arn = f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{name}"
                self._client_error(404, "ResourceNotFoundException", f"Function not found: {arn}")
                return
            try:
                event = json.loads(raw) if raw.strip() else {}
            except ValueError:
                self._client_error(400, "InvalidRequestContentException", "Could not parse request body into json")
                return
            kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
            if kind == "Event":
                threading.Thread(target=_invoke_and_log, args=(pool, event), daemon=True).start()
                self._reply(202, b"")
            elif kind == "DryRun":
                self._reply(204, b"")
            elif kind == "RequestResponse":
                outcome = pool.invoke(event)
                log_invocation(name, "invoke", outcome)
                headers = {"X-Amz-Executed-Version": "$LATEST"}
                if outcome.timed_out:
                    error = {
                        "errorMessage": f"Task timed out after {pool.spec.timeout:.2f} seconds",
                        "errorType": "Sandbox.Timedout",
                    }
                    self._reply(200, json.dumps(error).encode(), {**headers, "X-Amz-Function-Error": "Unhandled"})
                elif outcome.error is not None:
                    body = json.dumps(outcome.error).encode()
                    self._reply(200, body, {**headers, "X-Amz-Function-Error": "Unhandled"})
                else:
                    self._reply(200, (outcome.result or "null").encode(), headers)
            else:
                self._client_error(400, "InvalidParameterValueException", f"Unsupported invocation type {kind}")
                return
            elapsed = (time.monotonic() - started) * 1000
            console.line("lambda", f"POST {self.path} {kind} {elapsed:.0f} ms")

    return InvokeHandler


def _invoke_and_log(pool: FunctionPool, event: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the runtime is stopping
        log_invocation(pool.spec.logical_id, "event", pool.invoke(event))
