"""Logger, Tracer and Metrics, created once per process and imported where needed.

Service names come from POWERTOOLS_SERVICE_NAME (set per function in template.yaml).

Powertools' Tracer loads the X-Ray SDK and botocore when it is created (~0.5 s of a cold start),
even when tracing is off. So ``tracer`` here creates it only when tracing is on, by Powertools' own
rule (inside Lambda, not SAM local, POWERTOOLS_TRACE_DISABLED unset); off, its decorators hand the
function back unchanged and nothing is loaded.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, TypeVar

from aws_lambda_powertools import Logger, Metrics
from aws_lambda_powertools.shared.functions import resolve_truthy_env_var_choice

NAMESPACE = "EventReminders"
F = TypeVar("F", bound=Callable[..., Any])


def tracing_enabled() -> bool:
    """Powertools' rule for whether its Tracer records anything."""
    if resolve_truthy_env_var_choice(env=os.getenv("POWERTOOLS_TRACE_DISABLED", "false")):
        return False
    in_lambda = bool(os.getenv("LAMBDA_TASK_ROOT"))
    emulated = bool(os.getenv("AWS_SAM_LOCAL") or os.getenv("AWS_CHALICE_CLI_MODE"))
    return in_lambda and not emulated


class LazyTracer:
    """Powertools' Tracer, created on first use and only when tracing is on."""

    def __init__(self) -> None:
        self._tracer: Any = None

    @property
    def enabled(self) -> bool:
        return tracing_enabled()

    @property
    def real(self) -> Any:
        """The Powertools Tracer (loads the X-Ray SDK)."""
        if self._tracer is None:
            from aws_lambda_powertools import Tracer

            self._tracer = Tracer()
        return self._tracer

    def capture_method(self, method: F) -> F:
        return self.real.capture_method(method) if self.enabled else method

    def capture_lambda_handler(self, handler: F) -> F:
        return self.real.capture_lambda_handler(handler) if self.enabled else handler


logger = Logger()
tracer = LazyTracer()
metrics = Metrics(namespace=NAMESPACE)
