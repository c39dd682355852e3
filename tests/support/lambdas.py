"""Load a function's handler module from ``functions/<name>/app.py`` (each is named app.py,
as SAM expects, so they are loaded by path under distinct module names)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def load_function(name: str) -> ModuleType:
    return load_module(ROOT / "functions" / name / "app.py", f"_function_{name}_app")


def load_module(path: Path, module_name: str | None = None) -> ModuleType:
    """A Python file that is not in a package (a handler, a script under infra/), loaded once."""
    module_name = module_name or f"_script_{path.parent.name}_{path.stem}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    spec = importlib.util.spec_from_file_location(module_name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


class FakeLambdaContext:
    """The attributes of a Lambda context object that Powertools reads."""

    function_name = "test-function"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:test-function"
    memory_limit_in_mb = 256
    aws_request_id = "00000000-0000-4000-8000-000000000000"
    log_group_name = "/aws/lambda/test-function"
    log_stream_name = "2026/11/29/[$LATEST]00000000000000000000000000000000"

    def __init__(self, remaining_ms: int = 30_000) -> None:
        self._remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self._remaining_ms


_CHILD = """
import json, sys
from tests.support.lambdas import FakeLambdaContext, load_function
event = json.load(sys.stdin)
print(json.dumps(load_function(sys.argv[1]).lambda_handler(event, FakeLambdaContext())))
"""


def invoke_in_child(name: str, event: dict[str, Any], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """Invoke a function's handler in a process of its own, as a separate Lambda execution
    environment would (its own engine and connection); read the result with :func:`child_result`."""
    environment = {**os.environ, **(env or {}), "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD, name],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env=environment,
    )
    assert process.stdin is not None
    process.stdin.write(json.dumps(event))
    process.stdin.close()
    return process


def child_result(process: subprocess.Popen[str], timeout: float = 120) -> dict[str, Any]:
    assert process.stdout is not None and process.stderr is not None
    output = process.stdout.read()
    errors = process.stderr.read()
    process.wait(timeout)
    assert process.returncode == 0, errors[-3000:]
    return dict(json.loads(output.strip().splitlines()[-1]))
