"""NotifierFunction: every minute (EventBridge), email every due reminder and record each delivery.

Thin by design: parse the Scheduled Event, run one use case (``reminders.delivery``), emit its
metrics and return its summary as JSON. A configuration no run can work with, or an unreachable
database, ends the run with a readable 503 summary and a metric the template alarms on, never a
traceback; the next run resumes where this one stopped.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.parser import ValidationError, parse
from aws_lambda_powertools.utilities.parser.models import EventBridgeModel
from aws_lambda_powertools.utilities.typing import LambdaContext

from reminders import db
from reminders.delivery import NotifierMisconfigured, RunSummary, run_notifier
from reminders.mailer import ses_mailer
from reminders.observability import logger, metrics, tracer
from reminders.settings import notifier_settings


class ScheduledEvent(EventBridgeModel):
    # EventBridge always sends "0"; `sam local generate-event` samples leave it out.
    version: str = "0"


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        scheduled = parse(event=event, model=ScheduledEvent)
    except ValidationError as exc:
        errors = [{"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        logger.error("not an EventBridge Scheduled Event", extra={"errors": errors})
        metrics.add_metric(name="InvalidInvocations", unit=MetricUnit.Count, value=1)
        return {
            "statusCode": 400,
            "message": "expected an EventBridge Scheduled Event",
            "detail": errors,
            "sent": 0,
        }
    logger.append_keys(schedule_time=scheduled.time.isoformat(), rule=scheduled.resources[:1])

    try:
        settings = notifier_settings()
        summary = run_notifier(
            lambda: db.session_scope(settings=notifier_settings),
            ses_mailer(settings),
            settings,
            time_left=lambda: context.get_remaining_time_in_millis() / 1000,
        )
    except (ValidationError, db.DatabaseConfigError, NotifierMisconfigured) as exc:
        # A configuration no run can fix: one readable error line, a metric the template alarms on.
        message = _describe(exc) if isinstance(exc, ValidationError) else str(exc)
        logger.error("notifier is misconfigured", extra={"error": message})
        metrics.add_metric(name="NotifierMisconfigured", unit=MetricUnit.Count, value=1)
        return {"statusCode": 503, "message": f"notifier is misconfigured: {message}", "sent": 0}
    _emit_metrics(summary)
    result = summary.as_dict()
    if summary.database_error is not None:
        logger.error(
            "database unavailable; the next run resumes", extra={"error": summary.database_error, "summary": result}
        )
        metrics.add_metric(name="NotifierDatabaseUnavailable", unit=MetricUnit.Count, value=1)
        return {"statusCode": 503, "message": f"database unavailable: {summary.database_error}", **result}
    logger.info("notifier run finished", extra={"summary": result})
    return result


def _describe(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(map(str, e.get('loc', ()))) or 'settings'}: {e.get('msg')}" for e in exc.errors())


def _emit_metrics(summary: RunSummary) -> None:
    metrics.add_metric(name="RemindersSent", unit=MetricUnit.Count, value=summary.sent)
    # Reminders that ended failed (permanent rejection, or out of attempts): alarm on its Sum.
    metrics.add_metric(name="RemindersFailed", unit=MetricUnit.Count, value=summary.failed)
    metrics.add_metric(name="RemindersRetried", unit=MetricUnit.Count, value=summary.retried)
    metrics.add_metric(name="RemindersExpired", unit=MetricUnit.Count, value=summary.expired)
    metrics.add_metric(name="RemindersSuppressed", unit=MetricUnit.Count, value=summary.suppressed)
    metrics.add_metric(name="LeasesReclaimed", unit=MetricUnit.Count, value=summary.reclaimed)
    # SES calls whose outcome is unknown (timed out after the request went out): possible duplicates.
    metrics.add_metric(name="SendsUnconfirmed", unit=MetricUnit.Count, value=summary.unconfirmed)
    # One value per email: CloudWatch computes the lag's percentiles from them.
    for lag in summary.lags_seconds:
        metrics.add_metric(name="DeliveryLag", unit=MetricUnit.Seconds, value=lag)
