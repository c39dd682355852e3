"""A function worker: imports one handler once, then runs invocations read from a pipe.

Started by devserver.workers (forked by devserver.zygote, or as ``python -m devserver.bootstrap
<in_fd> <out_fd> <code_dir> <layer_dir> <handler>``); the function's own stdout/stderr stay free
for its logs, as in Lambda.

Protocol: each request is one JSON line. Each reply is one JSON header line, followed for a
result by that many bytes of the handler's JSON (passed on as is, never decoded twice):
``{"ready": true, "modules": [...]}`` once the handler is imported (as SAM's EAGER warm
containers do; the libraries it imported, for the zygote's next preload), then per request
``{"result": <length>}`` + payload, or ``{"error": {...}}``; either with ``"modules"`` when the
invocation imported more libraries (a first request's lazy imports: the next start preloads them).
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import time
import traceback
from typing import Any


class LambdaContext:
    """What Lambda's Python runtime passes as ``context``."""

    def __init__(self, request: dict[str, Any]) -> None:
        name = os.environ["AWS_LAMBDA_FUNCTION_NAME"]
        self.function_name = name
        self.function_version = "$LATEST"
        self.invoked_function_arn = request["function_arn"]
        self.memory_limit_in_mb = int(os.environ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"])
        self.aws_request_id = request["request_id"]
        self.log_group_name = f"/aws/lambda/{name}"
        self.log_stream_name = os.environ["AWS_LAMBDA_LOG_STREAM_NAME"]
        self.identity = None
        self.client_context = None
        self._deadline_ms = request["deadline_ms"]

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int(self._deadline_ms - time.time() * 1000))


def _error(exc: BaseException) -> dict[str, Any]:
    return {
        "errorMessage": str(exc),
        "errorType": type(exc).__name__,
        "stackTrace": traceback.format_tb(exc.__traceback__),
    }


def _write(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def libraries(own: list[str]) -> list[str]:
    """Modules imported so far that are not the function's or the runtime's own code, in order."""
    found = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if name != "__main__" and path and not any(path.startswith(folder) for folder in own):
            found.append(name)
    return found


def main(argv: list[str] | None = None) -> None:
    in_arg, out_arg, code_dir, layer_dir, handler_name = (argv or sys.argv[1:])[:5]
    reader = os.fdopen(int(in_arg), "rb")
    out_fd = int(out_arg)
    # Lambda puts the function's code first, then its layers, on sys.path.
    sys.path[:0] = [code_dir, layer_dir]
    module_name, _, function_name = handler_name.rpartition(".")
    init_error = None
    handler = None
    try:
        handler = getattr(importlib.import_module(module_name), function_name)
    except BaseException as exc:
        init_error = {**_error(exc), "errorType": f"Runtime.ImportModuleError: {type(exc).__name__}"}
        traceback.print_exc()
    own = [code_dir, layer_dir, os.path.dirname(os.path.dirname(__file__))]
    reported = libraries(own)
    modules_seen = len(sys.modules)
    _write(out_fd, json.dumps({"ready": True, "modules": reported}).encode() + b"\n")
    for line in reader:
        request = json.loads(line)
        header: dict[str, Any]
        payload = b""
        if init_error is not None:
            header = {"error": init_error}
        else:
            try:
                assert handler is not None
                result = handler(request["event"], LambdaContext(request))
                payload = json.dumps(result, default=str).encode()
                header = {"result": len(payload)}
            except BaseException as exc:
                traceback.print_exc()
                header = {"error": _error(exc)}
        if len(sys.modules) != modules_seen:  # the invocation imported something: a rare event
            modules_seen = len(sys.modules)
            known = set(reported)
            reported = libraries(own)
            header["modules"] = [name for name in reported if name not in known]
        reply = json.dumps(header).encode() + b"\n" + payload
        sys.stdout.flush()
        sys.stderr.flush()
        _write(out_fd, reply)


if __name__ == "__main__":
    main()
