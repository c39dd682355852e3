"""FeedbackFunction: SES's bounces, complaints and deliveries, as SNS delivers them.

The template's SES configuration set publishes every reminder's Bounce, Complaint, Delivery and
Reject events to an SNS topic this function subscribes to. Thin by design: read each SNS record,
hand it to one use case (``reminders.feedback``), emit metrics. A record that is not an SES event
is logged and skipped (retrying it cannot help); an unreachable database raises, so Lambda's
asynchronous retries (and then the failure queue) keep the feedback.
"""

from __future__ import annotations

from typing import Any

from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from reminders import db
from reminders.clock import utcnow
from reminders.feedback import FeedbackSummary, UnreadableFeedback, read_report, record_report, sns_messages
from reminders.observability import logger, metrics, tracer
from reminders.settings import database_settings


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    summary = FeedbackSummary()
    for record_id, message, problem in sns_messages(event):
        if message is None:
            summary.unreadable += 1
            logger.warning("skipped a record that is not SES feedback", extra={"record": record_id, "reason": problem})
            continue
        try:
            report = read_report(message)
        except UnreadableFeedback as exc:
            summary.unreadable += 1
            logger.warning("skipped a record that is not SES feedback", extra={"record": record_id, "reason": str(exc)})
            continue
        with db.session_scope(settings=database_settings) as session:
            unknown_before = summary.unknown_message
            record_report(session, report, utcnow(), summary)
        logger.info(
            "feedback recorded",
            extra={
                "record": record_id,
                "type": report.event_type,
                "message_id": report.message_id,
                "detail": report.detail,
                "known_message": summary.unknown_message == unknown_before,
                "suppressed": report.suppress.value if report.suppress else None,
            },
        )
    _emit_metrics(summary)
    return summary.as_dict()


def _emit_metrics(summary: FeedbackSummary) -> None:
    # Bounce and complaint rates (the template's alarms) divide these by EmailsDelivered + EmailsBounced.
    metrics.add_metric(name="EmailsDelivered", unit=MetricUnit.Count, value=summary.delivered)
    metrics.add_metric(name="EmailsBounced", unit=MetricUnit.Count, value=summary.bounced_permanent)
    metrics.add_metric(name="EmailsSoftBounced", unit=MetricUnit.Count, value=summary.bounced_transient)
    metrics.add_metric(name="EmailsComplained", unit=MetricUnit.Count, value=summary.complained)
    metrics.add_metric(name="EmailsRejected", unit=MetricUnit.Count, value=summary.rejected)
    metrics.add_metric(name="SuppressionsAdded", unit=MetricUnit.Count, value=summary.suppressions_added)
    metrics.add_metric(name="FeedbackUnreadable", unit=MetricUnit.Count, value=summary.unreadable)
