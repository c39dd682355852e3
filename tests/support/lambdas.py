"""Load a function's handler module from ``functions/<name>/app.py`` (each is named app.py,
as SAM expects, so they are loaded by path under distinct module names)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

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
