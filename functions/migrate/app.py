"""MigrateFunction: applies the database migrations.

Every deploy runs it through the ``DatabaseMigrations`` custom resource in template.yaml: CloudFormation
sends Create/Update/Delete and waits for the answer at the request's pre-signed ``ResponseURL``; a
failed migration fails the deploy with the reason in the stack events. Invoked directly (the local
runtime, ``sam local invoke``, ``aws lambda invoke``) it migrates and returns the revisions.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from typing import Any

from aws_lambda_powertools.utilities.parser import ValidationError
from aws_lambda_powertools.utilities.parser.models import (
    CloudFormationCustomResourceBaseModel,
    CloudFormationCustomResourceCreateModel,
    CloudFormationCustomResourceDeleteModel,
    CloudFormationCustomResourceUpdateModel,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from reminders import migrate
from reminders.db import get_engine
from reminders.observability import logger

MODELS: dict[str, type[CloudFormationCustomResourceBaseModel]] = {
    "Create": CloudFormationCustomResourceCreateModel,
    "Update": CloudFormationCustomResourceUpdateModel,
    "Delete": CloudFormationCustomResourceDeleteModel,
}
# Seconds kept back from the function's timeout: to answer CloudFormation before Lambda stops us,
# and (while waiting for a database that is still starting) to run the migrations themselves.
ANSWER_MARGIN_SECONDS = 3.0
MIGRATE_MARGIN_SECONDS = 60.0
# CloudFormation refuses responses over 4 KB; the reason is the only part that can grow.
MAX_REASON_CHARS = 1000


@logger.inject_lambda_context
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if isinstance(event, dict) and "ResponseURL" in event and "RequestType" in event:
        return _answer_cloudformation(event, context)
    result = migrate.apply(get_engine(), deadline=_deadline(context))
    logger.info("migrations applied", extra=vars(result))
    return {"status": "ok", "before": result.before, "after": result.after}


def _deadline(context: LambdaContext) -> float:
    return time.monotonic() + context.get_remaining_time_in_millis() / 1000 - MIGRATE_MARGIN_SECONDS


def _answer_cloudformation(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    answer = _Answer(event)
    # If the migrations outlive the function, say so while we still can; CloudFormation would wait an hour.
    timeout = context.get_remaining_time_in_millis() / 1000 - ANSWER_MARGIN_SECONDS
    watchdog = threading.Timer(
        max(timeout, 0.0), answer.send, ("FAILED", "MigrateFunction ran out of time before the migrations finished")
    )
    watchdog.daemon = True
    watchdog.start()
    try:
        status, reason, data = _handle(event, context)
    except Exception as exc:  # any failure must reach CloudFormation as FAILED with its reason
        logger.exception("custom resource request failed")
        status, reason, data = "FAILED", str(exc) or type(exc).__name__, {}
    finally:
        watchdog.cancel()
    sent = answer.send(status, reason, data)
    return {"status": status, "reason": reason, "sent": sent}


def _handle(event: dict[str, Any], context: LambdaContext) -> tuple[str, str, dict[str, str]]:
    model = MODELS.get(str(event.get("RequestType")))
    if model is None:
        return "FAILED", f"unknown RequestType {event.get('RequestType')!r}", {}
    try:
        request = model.model_validate(event)
    except ValidationError as exc:
        return "FAILED", f"not a CloudFormation custom resource request: {exc.errors()[0].get('msg')}", {}
    logger.append_keys(request_type=request.request_type, cfn_request_id=request.request_id)
    if request.request_type == "Delete":
        # Removing the stack (or this resource) never drops the schema or its data.
        return "SUCCESS", "migrations are never reverted", {}
    properties = request.resource_properties if isinstance(request.resource_properties, dict) else {}
    expected = properties.get("HeadRevision")
    try:
        result = migrate.apply(
            get_engine(), expected_head=str(expected) if expected else None, deadline=_deadline(context)
        )
    except migrate.MigrationFailed as exc:
        logger.error("migrations failed", extra={"reason": str(exc)})
        return "FAILED", str(exc), {}
    logger.info("migrations applied", extra=vars(result))
    reason = result.note or f"schema at {result.after} (was {result.before or 'empty'})"
    return "SUCCESS", reason, {"Before": result.before or "", "After": result.after or ""}


class _Answer:
    """The one response CloudFormation gets: a PUT of a small JSON document to the pre-signed URL.

    Hand-written (a dozen lines) rather than crhelper: crhelper only speaks HTTPS, retries a failed
    PUT forever and reconfigures the root logger that Powertools' logger relies on.
    """

    def __init__(self, event: dict[str, Any]) -> None:
        self.event = event
        self._lock = threading.Lock()
        self._sent = False

    def send(self, status: str, reason: str, data: dict[str, str] | None = None) -> bool:
        """PUT the response once (the watchdog and the handler may race); False if already sent."""
        with self._lock:
            if self._sent:
                return False
            body = json.dumps(
                {
                    "Status": status,
                    "Reason": reason[:MAX_REASON_CHARS],
                    # Stable across updates: a new id would make CloudFormation delete the "old" resource.
                    "PhysicalResourceId": self.event.get("PhysicalResourceId") or "database-migrations",
                    "StackId": self.event.get("StackId"),
                    "RequestId": self.event.get("RequestId"),
                    "LogicalResourceId": self.event.get("LogicalResourceId"),
                    "Data": data or {},
                }
            ).encode()
            # The URL exactly as sent (its query string is an S3 signature); parse() checked it is http(s).
            request = urllib.request.Request(  # noqa: S310
                str(self.event["ResponseURL"]),
                data=body,
                method="PUT",
                headers={"Content-Type": "", "Content-Length": str(len(body))},
            )
            # Not caught: if CloudFormation cannot be told, Lambda's retry of this event tells it.
            with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
                logger.info("answered CloudFormation", extra={"status": status, "http_status": response.status})
            self._sent = True
            return True
