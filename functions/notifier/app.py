"""NotifierFunction: emails every due reminder (built in issue 3)."""

from __future__ import annotations

from typing import Any


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    raise NotImplementedError("the notifier is not built yet")
