"""ApiFunction: every route of CONTRACT.md on one Powertools REST resolver.

Thin by design: parse and validate (Powertools + pydantic), call one use case, shape the reply.
Errors become HTTP statuses in the exception handlers below and nowhere else.
"""

# No "from __future__ import annotations": Powertools reads the route signatures at run time.

import binascii
from dataclasses import dataclass
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext
from pydantic import AwareDatetime
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError

from reminders import events
from reminders.clock import utcnow
from reminders.db import DatabaseConfigError, session_scope
from reminders.errors import InvalidInput, NotFound
from reminders.observability import logger, metrics, tracer
from reminders.schemas import (
    ErrorOut,
    EventCreate,
    EventOut,
    EventPage,
    EventUpdate,
    NotificationList,
    NotificationOut,
)

app = APIGatewayRestResolver(enable_validation=True)
# One description of the document, for both /swagger and /openapi.json.
app.configure_openapi(
    title="Event reminders API",
    version="1.0.0",
    description="Create events with recipients and reminders; reminders are emailed when due.",
)
app.enable_swagger(path="/swagger")

EventId = Annotated[str, Path(description="The event's id (a UUID)")]
NOT_FOUND: dict[int, Any] = {
    404: {"description": "Unknown event", "content": {"application/json": {"model": ErrorOut}}}
}
INVALID: dict[int, Any] = {422: {"description": "Invalid input", "content": {"application/json": {"model": ErrorOut}}}}


def ok(model: type[Any], description: str = "OK", status: int = 200) -> dict[int, Any]:
    """A success response for the OpenAPI document (Powertools drops the implicit 200 once
    ``responses`` is given)."""
    return {status: {"description": description, "content": {"application/json": {"model": model}}}}


class Unauthenticated(Exception):
    """No identity in the request's authorizer context (the API was reached without the authorizer)."""


@dataclass(frozen=True)
class Caller:
    owner: str
    email: str | None


def caller() -> Caller:
    """Who is calling, from the authorizer's context only; never from the body."""
    context = app.current_event.request_context.authorizer
    principal = context.principal_id if context else None
    if not principal or principal == "anonymous":
        raise Unauthenticated
    email = context.get("email") or None
    return Caller(owner=str(principal), email=str(email) if email else None)


def _error(status: int, message: str, detail: list[dict[str, Any]] | None = None) -> Response[Any]:
    body: dict[str, Any] = {"statusCode": status, "message": message}
    if detail is not None:
        body["detail"] = detail
    return Response(status_code=status, content_type=content_types.APPLICATION_JSON, body=body)


@app.exception_handler(Unauthenticated)
def _unauthenticated(exc: Unauthenticated) -> Response[Any]:
    return _error(401, "Unauthorized: send 'Authorization: Bearer <token>'")


@app.exception_handler(NotFound)
def _not_found(exc: NotFound) -> Response[Any]:
    return _error(404, exc.message)


@app.exception_handler(InvalidInput)
def _invalid(exc: InvalidInput) -> Response[Any]:
    loc = ["body" if exc.field != "cursor" else "query", exc.field] if exc.field else []
    return _error(422, exc.message, [{"loc": loc, "type": "value_error", "msg": exc.message}])


@app.exception_handler(RequestValidationError)
def _request_invalid(exc: RequestValidationError) -> Response[Any]:
    # Echo no input back (a megabyte title would come back whole); loc, type and msg suffice.
    detail = [{"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")} for e in exc.errors()]
    return _error(422, "request is invalid", detail)


@app.exception_handler([UnicodeDecodeError, binascii.Error])
def _undecodable_body(exc: Exception) -> Response[Any]:
    return _error(400, "request body is not UTF-8 JSON")


@app.exception_handler(DatabaseConfigError)
def _database_misconfigured(exc: DatabaseConfigError) -> Response[Any]:
    logger.error("database is not configured", extra={"error": str(exc)})
    return _error(503, "service unavailable: the database is not configured")


@app.exception_handler(Exception)
def _map_errors(exc: Exception) -> Response[Any]:
    if isinstance(exc, ServiceError):  # Powertools' own 4xx (unknown route, ...)
        return _error(exc.status_code, str(exc.msg))
    if isinstance(exc, OperationalError | InterfaceError) or (
        isinstance(exc, DBAPIError) and exc.connection_invalidated
    ):
        logger.error(
            "database unavailable", extra={"error": str(exc.orig) if isinstance(exc, DBAPIError) else str(exc)}
        )
        return _error(503, "database unavailable, try again shortly")
    logger.exception("unhandled error")
    return _error(500, "internal error")


@app.post(
    "/events",
    summary="Create an event",
    responses={**ok(EventOut, "Created", 201), **INVALID},
)
@tracer.capture_method
def create_event(body: Annotated[EventCreate, Body()]) -> Response[EventOut]:
    with session_scope() as session:
        who = caller()
        event = events.create_event(session, who.owner, body, utcnow(), default_recipient=who.email)
        out = EventOut.model_validate(event)
    metrics.add_metric(name="EventsCreated", unit="Count", value=1)
    return Response(
        status_code=201,
        content_type=content_types.APPLICATION_JSON,
        body=out,
        headers={"Location": f"/events/{out.id}"},
    )


@app.get("/events", summary="List events by start time", responses={**ok(EventPage), **INVALID})
@tracer.capture_method
def list_events(
    starts_after: Annotated[AwareDatetime | None, Query(description="Only events starting after this")] = None,
    starts_before: Annotated[AwareDatetime | None, Query(description="Only events starting before this")] = None,
    limit: Annotated[int, Query(ge=1, le=events.MAX_PAGE_SIZE)] = events.DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the page before")] = None,
) -> EventPage:
    with session_scope() as session:
        page, next_cursor = events.list_events(
            session,
            caller().owner,
            starts_after=starts_after,
            starts_before=starts_before,
            limit=limit,
            cursor=cursor,
        )
        return EventPage(items=[EventOut.model_validate(e) for e in page], next_cursor=next_cursor)


@app.get("/events/<event_id>", summary="Read an event", responses={**ok(EventOut), **NOT_FOUND, **INVALID})
@tracer.capture_method
def get_event(event_id: EventId) -> EventOut:
    with session_scope() as session:
        return EventOut.model_validate(events.get_event(session, caller().owner, event_id))


@app.patch("/events/<event_id>", summary="Change an event", responses={**ok(EventOut), **NOT_FOUND, **INVALID})
@tracer.capture_method
def update_event(event_id: EventId, body: Annotated[EventUpdate, Body()]) -> EventOut:
    with session_scope() as session:
        return EventOut.model_validate(events.update_event(session, caller().owner, event_id, body, utcnow()))


@app.delete(
    "/events/<event_id>",
    summary="Delete an event and cancel its pending reminders",
    responses={204: {"description": "Deleted"}, **NOT_FOUND, **INVALID},
)
@tracer.capture_method
def delete_event(event_id: EventId) -> Response[None]:
    with session_scope() as session:
        events.delete_event(session, caller().owner, event_id, utcnow())
    return Response(status_code=204, body=None)


@app.get(
    "/events/<event_id>/notifications",
    summary="An event's reminder deliveries",
    responses={**ok(NotificationList), **NOT_FOUND, **INVALID},
)
@tracer.capture_method
def list_notifications(event_id: EventId) -> NotificationList:
    with session_scope() as session:
        rows = events.list_event_notifications(session, caller().owner, event_id)
        return NotificationList(items=[NotificationOut.model_validate(n) for n in rows])


@app.get("/openapi.json", summary="This OpenAPI document")
def openapi_document() -> Response[str]:
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=app.get_openapi_json_schema(),
    )


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
