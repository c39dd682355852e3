"""The Lambda Invoke API (what `sam local start-lambda` serves), functions named by logical id."""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from http import HTTPStatus
from typing import Any

from devserver import console
from devserver.gateway import log_invocation
from devserver.serving import BoundedHandler
from devserver.template import ACCOUNT_ID, REGION
from devserver.workers import FunctionPool

_PATH = re.compile(r"^/2015-03-31/functions/(?P<name>[^/]+)/invocations/?$")


def handler_class(pools: dict[str, FunctionPool]) -> type[BoundedHandler]:
    class InvokeHandler(BoundedHandler):
        def _reply(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_json(status, [("Content-Type", "application/json"), *(headers or {}).items()], body)

        def _client_error(self, status: int, kind: str, message: str) -> None:
            body = json.dumps({"Type": "User", "message": message}).encode()
            self._reply(status, body, {"x-amzn-ErrorType": kind})

        def error_body(self, code: int, message: str) -> tuple[list[tuple[str, str]], bytes]:
            headers = [("Content-Type", "application/json"), ("x-amzn-ErrorType", "InvalidRequestContentException")]
            return headers, json.dumps({"Type": "User", "message": message}).encode()

        def handle_any(self) -> None:
            raw = self.request_body()
            if raw == HTTPStatus.REQUEST_ENTITY_TOO_LARGE:
                self._client_error(413, "RequestTooLargeException", "Request must be smaller than 10 MiB")
            elif isinstance(raw, HTTPStatus):
                self.send_error(raw)
            elif self.command != "POST":
                self._client_error(404, "UnknownOperationException", f"Unknown operation {self.command} {self.path}")
            else:
                self._invoke(raw)

        def _invoke(self, raw: bytes) -> None:
            started = time.monotonic()
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
            except (ValueError, RecursionError):
                self._client_error(400, "InvalidRequestContentException", "Could not parse request body into json")
                return
            kind = self.headers.get("X-Amz-Invocation-Type", "RequestResponse")
            if kind == "Event":
                threading.Thread(target=_invoke_and_log, args=(pool, event), daemon=True).start()
                self._reply(202, b"")
            elif kind == "DryRun":
                self._reply(204, b"")
            elif kind == "RequestResponse":
                try:
                    outcome = pool.invoke(event)
                except RuntimeError:  # the runtime is stopping
                    self._client_error(503, "ServiceException", "the local runtime is stopping")
                    return
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
                    self._reply(200, outcome.result or b"null", headers)
            else:
                self._client_error(400, "InvalidParameterValueException", f"Unsupported invocation type {kind}")
                return
            elapsed = (time.monotonic() - started) * 1000
            console.line("lambda", f"POST {self.path} {kind} {elapsed:.0f} ms")

    return InvokeHandler


def _invoke_and_log(pool: FunctionPool, event: Any) -> None:
    with contextlib.suppress(RuntimeError):  # the runtime is stopping
        log_invocation(pool.spec.logical_id, "event", pool.invoke(event))
