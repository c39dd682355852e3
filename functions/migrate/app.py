"""MigrateFunction: applies the database migrations (invoke it after each deploy)."""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from reminders import migrate
from reminders.db import get_engine
from reminders.observability import logger


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    result = migrate.upgrade(get_engine())
    logger.info("migrations applied", extra=result)
    return {"status": "ok", **result}
