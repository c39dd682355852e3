"""ApiFunction: every route of CONTRACT.md on one Powertools REST resolver.

Thin by design: parse and validate (Powertools + pydantic), call one use case, shape the reply.
Errors become HTTP statuses in the exception handlers below and nowhere else.
"""

# No "from __future__ import annotations": Powertools reads the route signatures at run time.

import binascii
import html
import json
import re
from dataclasses import dataclass
from email.message import Message
from functools import lru_cache
from pathlib import Path as FilePath
from typing import Annotated, Any

from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import ServiceError
from aws_lambda_powertools.event_handler.middlewares.openapi_validation import OpenAPIRequestValidationMiddleware
from aws_lambda_powertools.event_handler.openapi.exceptions import RequestValidationError
from aws_lambda_powertools.event_handler.openapi.params import Body, Header, Path, Query
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.utilities.typing import LambdaContext

from reminders import calendar_feeds, events, snapstart, suppressions, unsubscribe
from reminders.clock import utcnow
from reminders.db import DatabaseConfigError, dispose_engine, is_unavailable, session_scope
from reminders.errors import Conflict, InvalidInput, NotFound
from reminders.observability import logger, metrics, tracer
from reminders.schemas import (
    MAX_IDEMPOTENCY_KEY_LENGTH,
    AgendaItem,
    AgendaPage,
    CalendarFeedOut,
    ErrorOut,
    EventCreate,
    EventOut,
    EventPage,
    EventUpdate,
    NotificationList,
    NotificationOut,
    OccurrenceOut,
    OccurrencePage,
    SuppressionList,
    SuppressionOut,
    Timestamp,
    UnsubscribeOut,
)
from reminders.settings import api_settings


class BodyNotJson(Exception):
    """The request body is not parseable JSON (syntax, nesting, numbers beyond Python's limits)."""


class UnsupportedMediaType(Exception):
    """A request body declared as something other than JSON."""


def parse_json_body(text: str) -> Any:
    """JSON as RFC 8259 has it: no NaN/Infinity; any nesting or integer size is a 400, not a crash."""
    try:
        return json.loads(text, parse_constant=_no_constants)
    except (ValueError, RecursionError):  # ValueError covers JSONDecodeError and the int-digits limit
        raise BodyNotJson from None


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


# text/plain too: browsers send a JSON body as text/plain to avoid a CORS preflight, and so do
# curl --data-binary users who forget -H; the body must still parse as JSON (else 400).
JSON_BODY_TYPES = ("application/json", "text/plain")


def is_json_media_type(content_type: str) -> bool:
    """``application/json`` or ``text/plain`` in any case, with or without parameters; a charset,
    if any, is UTF-8."""
    header = Message()
    header["content-type"] = content_type
    charset = header.get_param("charset")
    # Not get_content_type(): it turns a malformed value ("json", ";;;") into text/plain.
    media_type = content_type.split(";", 1)[0].strip().lower()
    return media_type in JSON_BODY_TYPES and (not isinstance(charset, str) or charset.lower() in ("utf-8", "utf8"))


class _JsonBodies(OpenAPIRequestValidationMiddleware):
    def handler(self, app: Any, next_middleware: Any) -> Any:
        # Who is calling comes first, as on API Gateway, where the authorizer refuses a caller
        # before the body is read: under SAM local the authorizer lets a refused token through as
        # "anonymous", and a bad body must not turn its 401 into a 422.
        if app.context["_route"].security:
            caller()
        return super().handler(app, next_middleware)

    # Powertools would parse form and multipart bodies too, and match "application/json" case-sensitively.
    def _get_body(self, app: Any) -> Any:
        content_type = app.current_event.headers.get("content-type")
        if content_type and not is_json_media_type(content_type):
            raise UnsupportedMediaType
        return app.current_event.json_body


app = APIGatewayRestResolver(enable_validation=True, json_body_deserializer=parse_json_body)
app._request_validation_middleware = _JsonBodies()

BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
DOCUMENT: dict[str, Any] = {"type": "object"}
EventId = Annotated[str, Path(description="The event's id (a UUID)")]


def _errors(*statuses: int) -> dict[int, Any]:
    descriptions = {
        400: "The body is not JSON",
        401: "No valid bearer token",
        404: "Not found (unknown event, link or address)",
        409: "A request with this Idempotency-Key is still in progress; retry",
        415: "The body is not declared as application/json (or text/plain)",
        422: "Invalid input",
        503: "The database is unavailable; retry",
    }
    return {
        status: {"description": descriptions[status], "content": {"application/json": {"model": ErrorOut}}}
        for status in statuses
    }


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


def sessions() -> Any:
    """A database session with the API's settings (timeouts under API Gateway's 29 s)."""
    return session_scope(settings=api_settings)


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
    loc = [exc.location, exc.field] if exc.field else []
    return _error(422, exc.message, [{"loc": loc, "type": "value_error", "msg": exc.message}])


@app.exception_handler(Conflict)
def _conflict(exc: Conflict) -> Response[Any]:
    return _error(409, exc.message)


@app.exception_handler(RequestValidationError)
def _request_invalid(exc: RequestValidationError) -> Response[Any]:
    # Echo no input back (a megabyte title would come back whole); loc, type and msg suffice.
    detail = [{"loc": list(e.get("loc", ())), "type": e.get("type"), "msg": e.get("msg")} for e in exc.errors()]
    return _error(422, "request is invalid", detail)


@app.exception_handler([BodyNotJson, UnicodeDecodeError, binascii.Error])
def _undecodable_body(exc: Exception) -> Response[Any]:
    return _error(400, "request body is not UTF-8 JSON")


@app.exception_handler(UnsupportedMediaType)
def _unsupported_media_type(exc: UnsupportedMediaType) -> Response[Any]:
    return _error(415, "send the body as JSON with 'Content-Type: application/json'")


@app.exception_handler(calendar_feeds.FeedNotConfigured)
def _feed_not_configured(exc: calendar_feeds.FeedNotConfigured) -> Response[Any]:
    logger.error("calendar feed key is not configured", extra={"error": str(exc)})
    return _error(503, "service unavailable: calendar feeds are not configured")


@app.exception_handler(unsubscribe.InvalidToken)
def _invalid_token(exc: unsubscribe.InvalidToken) -> Response[Any]:
    return _error(404, "unknown unsubscribe link")


@app.exception_handler(unsubscribe.KeysNotConfigured)
def _keys_not_configured(exc: unsubscribe.KeysNotConfigured) -> Response[Any]:
    logger.error("unsubscribe keys are not configured", extra={"error": str(exc)})
    return _error(503, "service unavailable: unsubscribe links are not configured")


@app.exception_handler(DatabaseConfigError)
def _database_misconfigured(exc: DatabaseConfigError) -> Response[Any]:
    logger.error("database is not configured", extra={"error": str(exc)})
    return _error(503, "service unavailable: the database is not configured")


@app.exception_handler(Exception)
def _map_errors(exc: Exception) -> Response[Any]:
    if isinstance(exc, ServiceError):  # Powertools' own 4xx (unknown route, ...)
        return _error(exc.status_code, str(exc.msg))
    if is_unavailable(exc):
        logger.error("database unavailable", extra={"error": f"{type(exc).__name__}: {exc}"[:500]})
        return _error(503, "database unavailable, try again shortly")
    # A domain error that reached us wrapped (Powertools' idempotency wraps what its store raises).
    cause = exc.__cause__
    if isinstance(cause, NotFound | InvalidInput | DatabaseConfigError):
        return _map_errors(cause)
    logger.exception("unhandled error")
    return _error(500, "internal error")


IdempotencyKey = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        min_length=1,
        max_length=MAX_IDEMPOTENCY_KEY_LENGTH,
        description="Retry-safe creation: the same key and body within 24 h return the first response again",
    ),
]


@app.post(
    "/events",
    summary="Create an event",
    security=BEARER,
    responses={**ok(EventOut, "Created", 201), **_errors(400, 401, 409, 415, 422, 503)},
)
@tracer.capture_method
def create_event(body: Annotated[EventCreate, Body()], idempotency_key: IdempotencyKey = None) -> Response[EventOut]:
    who = caller()
    with sessions() as session:

        def create() -> dict[str, Any]:
            event = events.create_event(session, who.owner, body, utcnow(), default_recipient=who.email)
            return EventOut.model_validate(event).model_dump(mode="json")

        if idempotency_key is None:
            out, replayed = create(), False
        else:
            # Imported here: Powertools' idempotency package loads boto3 (for its DynamoDB store).
            from reminders import idempotency

            out, replayed = idempotency.respond_once(
                session,
                caller=who.owner,
                key=idempotency_key,
                request=body.model_dump(mode="json"),
                respond=create,
                lambda_context=app.lambda_context,
            )
    if not replayed:
        metrics.add_metric(name="EventsCreated", unit="Count", value=1)
    headers = {"Location": f"/events/{out['id']}"}
    if replayed:
        headers["Idempotent-Replayed"] = "true"
    return Response(
        status_code=201, content_type=content_types.APPLICATION_JSON, body=EventOut.model_validate(out), headers=headers
    )


@app.get(
    "/events",
    summary="List events by start time",
    security=BEARER,
    responses={**ok(EventPage), **_errors(401, 422, 503)},
)
@tracer.capture_method
def list_events(
    starts_after: Annotated[Timestamp | None, Query(description="Only events starting after this (RFC 3339)")] = None,
    starts_before: Annotated[Timestamp | None, Query(description="Only events starting before this (RFC 3339)")] = None,
    limit: Annotated[int, Query(ge=1, le=events.MAX_PAGE_SIZE)] = events.DEFAULT_PAGE_SIZE,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the page before")] = None,
) -> EventPage:
    who = caller()
    with sessions() as session:
        page, next_cursor = events.list_events(
            session,
            who.owner,
            starts_after=starts_after,
            starts_before=starts_before,
            limit=limit,
            cursor=cursor,
        )
        return EventPage(items=[EventOut.model_validate(e) for e in page], next_cursor=next_cursor)


@app.get(
    "/events/<event_id>",
    summary="Read an event",
    security=BEARER,
    responses={**ok(EventOut), **_errors(401, 404, 422, 503)},
)
@tracer.capture_method
def get_event(event_id: EventId) -> EventOut:
    who = caller()
    with sessions() as session:
        return EventOut.model_validate(events.get_event(session, who.owner, event_id))


@app.patch(
    "/events/<event_id>",
    summary="Change an event",
    security=BEARER,
    responses={**ok(EventOut), **_errors(400, 401, 404, 415, 422, 503)},
)
@tracer.capture_method
def update_event(event_id: EventId, body: Annotated[EventUpdate, Body()]) -> EventOut:
    who = caller()
    with sessions() as session:
        return EventOut.model_validate(events.update_event(session, who.owner, event_id, body, utcnow()))


@app.delete(
    "/events/<event_id>",
    summary="Delete an event and cancel its pending reminders",
    security=BEARER,
    # "content": {} keeps Powertools from documenting a JSON body: a 204 has none.
    responses={204: {"description": "Deleted", "content": {}}, **_errors(401, 404, 422, 503)},
)
@tracer.capture_method
def delete_event(event_id: EventId) -> Response[None]:
    who = caller()
    with sessions() as session:
        events.delete_event(session, who.owner, event_id, utcnow())
    return Response(status_code=204, body=None)


@app.get(
    "/events/<event_id>/notifications",
    summary="An event's reminder deliveries",
    description="The owner reads the log of a deleted event too (its undelivered rows `cancelled`).",
    security=BEARER,
    responses={**ok(NotificationList), **_errors(401, 404, 422, 503)},
)
@tracer.capture_method
def list_notifications(event_id: EventId) -> NotificationList:
    who = caller()
    with sessions() as session:
        rows = events.list_event_notifications(session, who.owner, event_id)
        return NotificationList(items=[NotificationOut.model_validate(n) for n in rows])


Window = Annotated[Timestamp | None, Query(description="RFC 3339")]
Limit = Annotated[int, Query(ge=1, le=events.MAX_PAGE_SIZE)]
Cursor = Annotated[str | None, Query(max_length=512, description="next_cursor of the page before")]


@app.get(
    "/events/<event_id>/occurrences",
    summary="An event's occurrences in time order (a one-off event has one)",
    security=BEARER,
    responses={**ok(OccurrencePage), **_errors(401, 404, 422, 503)},
)
@tracer.capture_method
def list_occurrences(
    event_id: EventId,
    after: Window = None,
    before: Window = None,
    limit: Limit = events.DEFAULT_PAGE_SIZE,
    cursor: Cursor = None,
) -> OccurrencePage:
    who = caller()
    with sessions() as session:
        page, next_cursor = events.list_occurrences(
            session, who.owner, event_id, after=after, before=before, limit=limit, cursor=cursor
        )
    return OccurrencePage(items=[OccurrenceOut(starts_at=t) for t in page], next_cursor=next_cursor)


@app.get(
    "/agenda",
    summary="Every occurrence of the caller's events in a window (at most 366 days), in time order",
    security=BEARER,
    responses={**ok(AgendaPage), **_errors(401, 422, 503)},
)
@tracer.capture_method
def agenda(
    after: Window = None, before: Window = None, limit: Limit = events.DEFAULT_PAGE_SIZE, cursor: Cursor = None
) -> AgendaPage:
    who = caller()
    with sessions() as session:
        page, next_cursor = events.agenda(
            session, who.owner, utcnow(), after=after, before=before, limit=limit, cursor=cursor
        )
        items = [AgendaItem(event_id=e.id, title=e.title, starts_at=t) for e, t in page]
    return AgendaPage(items=items, next_cursor=next_cursor)


def _feed_key() -> bytes:
    key = api_settings().calendar_feed_key
    if key is None:
        raise calendar_feeds.FeedNotConfigured("CALENDAR_FEED_KEY is not set")
    return key.get_secret_value().encode()


def _public_base_url() -> str:
    """The API's base URL as the caller reached it (scheme, host, stage prefix)."""
    headers = app.current_event.headers
    scheme = headers.get("x-forwarded-proto") or headers.get("X-Forwarded-Proto") or "https"
    host = headers.get("host") or headers.get("Host") or app.current_event.request_context.domain_name
    return f"{scheme}://{host}{_base_path()}"


@app.get(
    "/calendar/feed",
    summary="The caller's private iCalendar feed URL (created on first call)",
    security=BEARER,
    responses={**ok(CalendarFeedOut), **_errors(401, 422, 503)},
)
@tracer.capture_method
def get_calendar_feed() -> CalendarFeedOut:
    who = caller()
    key = _feed_key()
    with sessions() as session:
        secret = calendar_feeds.get_or_create_feed(session, who.owner, key, utcnow())
    return CalendarFeedOut(url=calendar_feeds.feed_url(_public_base_url(), secret))


@app.delete(
    "/calendar/feed",
    summary="Revoke the caller's feed URL (the next GET makes a new one)",
    security=BEARER,
    responses={204: {"description": "Revoked", "content": {}}, **_errors(401, 422, 503)},
)
@tracer.capture_method
def delete_calendar_feed() -> Response[None]:
    who = caller()
    with sessions() as session:
        calendar_feeds.revoke_feed(session, who.owner)
    return Response(status_code=204, body=None)


@app.get(
    "/calendar/<feed>",
    summary="A private iCalendar feed (RFC 5545); the secret in the URL is the key, no bearer token",
    responses={
        200: {"description": "The feed", "content": {"text/calendar": {"schema": {"type": "string"}}}},
        **_errors(404, 422, 503),
    },
)
@tracer.capture_method
def calendar_feed_document(feed: Annotated[str, Path(max_length=64, description="<secret>.ics")]) -> Response[str]:
    if not feed.endswith(".ics"):
        raise NotFound("unknown calendar feed")
    with sessions() as session:
        document = calendar_feeds.feed_document(session, feed.removesuffix(".ics"), utcnow())
    return Response(
        status_code=200,
        content_type="text/calendar; charset=utf-8",
        body=document.decode("utf-8"),
        headers={"Cache-Control": "private, max-age=300"},
    )


UnsubscribeToken = Annotated[
    str, Path(max_length=unsubscribe.MAX_TOKEN_LENGTH, description="The token of the email's unsubscribe link")
]
HTML_PAGE: dict[str, Any] = {"text/html": {"schema": {"type": "string"}}}


def _subscription(token: str) -> unsubscribe.Subscription:
    return unsubscribe.read_token(api_settings().unsubscribe_key_list(), token)


def _page(title: str, body: str) -> str:
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # No icon: the browser would ask the API for /favicon.ico, a 404.
        '<link rel="icon" href="data:,">'
        f"<title>{html.escape(title)}</title></head>"
        f'<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto">{body}</body></html>'
    )


def _wants_html() -> bool:
    accept = (app.current_event.headers.get("accept") or app.current_event.headers.get("Accept") or "").lower()
    return "text/html" in accept


@app.get(
    "/unsubscribe/<token>",
    summary="The unsubscribe page of a reminder's link: a button that POSTs; the GET itself changes nothing",
    responses={200: {"description": "The confirmation page", "content": HTML_PAGE}, **_errors(404, 422, 503)},
)
@tracer.capture_method
def unsubscribe_page(token: UnsubscribeToken) -> Response[str]:
    subscription = _subscription(token)
    recipient = html.escape(subscription.recipient)
    body = (
        "<h1>Unsubscribe</h1>"
        f"<p>Stop the reminders this sender's events send to <strong>{recipient}</strong>?</p>"
        '<form method="post"><input type="hidden" name="List-Unsubscribe" value="One-Click">'
        '<button type="submit">Unsubscribe</button></form>'
    )
    return Response(
        status_code=200,
        content_type="text/html; charset=utf-8",
        body=_page("Unsubscribe", body),
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


@app.post(
    "/unsubscribe/<token>",
    summary="One-click unsubscribe (RFC 8058): stop every reminder from the link's owner to its recipient",
    description="Mail clients POST `List-Unsubscribe=One-Click` (any body is accepted); no bearer token.",
    responses={
        200: {
            "description": "Unsubscribed (again, if already)",
            "content": {"application/json": {"model": UnsubscribeOut}, **HTML_PAGE},
        },
        **_errors(404, 422, 503),
    },
)
@tracer.capture_method
def unsubscribe_one_click(token: UnsubscribeToken) -> Response[Any]:
    subscription = _subscription(token)
    with sessions() as session:
        new = suppressions.unsubscribe(session, subscription.owner, subscription.recipient, utcnow())
    if new:
        metrics.add_metric(name="Unsubscribes", unit="Count", value=1)
    message = f"{subscription.recipient} will get no more reminders from this sender"
    if _wants_html():
        page = _page("Unsubscribed", f"<h1>Unsubscribed</h1><p>{html.escape(message)}.</p>")
        return Response(status_code=200, content_type="text/html; charset=utf-8", body=page)
    return Response(
        status_code=200,
        content_type=content_types.APPLICATION_JSON,
        body=UnsubscribeOut(unsubscribed=True, message=message),
    )


@app.get(
    "/suppressions",
    summary="Addresses the caller's reminders will not reach (bounced, complained, unsubscribed)",
    security=BEARER,
    responses={**ok(SuppressionList), **_errors(401, 422, 503)},
)
@tracer.capture_method
def list_suppressions() -> SuppressionList:
    who = caller()
    with sessions() as session:
        found = suppressions.list_for_owner(session, who.owner)
    return SuppressionList(items=[SuppressionOut(email=s.email, reason=s.reason, since=s.since) for s in found])


@app.delete(
    "/suppressions/<email>",
    summary="Lift the caller's own unsubscribe of an address (bounces and complaints stay)",
    security=BEARER,
    responses={204: {"description": "Lifted", "content": {}}, **_errors(401, 404, 422, 503)},
)
@tracer.capture_method
def delete_suppression(
    email: Annotated[str, Path(max_length=3 * suppressions.MAX_EMAIL_LENGTH, description="The address")],
) -> Response[None]:
    who = caller()
    address = suppressions.parse_address(email)
    with sessions() as session:
        suppressions.lift_unsubscribe(session, who.owner, address)
    return Response(status_code=204, body=None)


def _base_path() -> str:
    """The stage prefix when the request's URL has one (API Gateway's own URL, not a custom domain
    or SAM local): the servers entry of the document, as Powertools gives its own Swagger UI."""
    context = app.current_event.request_context
    stage = context.stage
    if stage and stage != "$default" and context.path.startswith(f"/{stage}"):
        return f"/{stage}"
    return ""


@lru_cache(maxsize=4)
def _openapi_json(base_path: str) -> str:
    """The OpenAPI document, built when first asked for: Powertools' OpenAPI models (about a fifth
    of the cold import) are loaded here, not at start-up; no other route needs them."""
    from aws_lambda_powertools.event_handler.openapi.models import HTTPBearer, Server

    app.configure_openapi(
        title="Event reminders API",
        version="1.1.0",
        description="Create events with recipients and reminders; reminders are emailed when due.",
        security_schemes={"bearerAuth": HTTPBearer(bearerFormat="JWT", description="An ID token from the issuer")},
    )
    return app.get_openapi_json_schema(servers=[Server(url=base_path or "/")])


@app.get(
    "/openapi.json",
    summary="This OpenAPI document",
    responses={200: {"description": "OpenAPI 3 document", "content": {"application/json": {"schema": DOCUMENT}}}},
)
def openapi_document() -> Response[str]:
    return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=_openapi_json(_base_path()))


@app.get("/swagger", include_in_schema=False)
def swagger_ui() -> Response[str]:
    """Powertools' Swagger UI page over the same document (``?format=json``: the document itself).
    Routed here rather than by ``app.enable_swagger``, which loads the OpenAPI models at start-up."""
    from aws_lambda_powertools.event_handler.openapi import swagger_ui as assets
    from aws_lambda_powertools.event_handler.openapi.swagger_ui import generate_swagger_html

    document = _openapi_json(_base_path())
    if (app.current_event.query_string_parameters or {}).get("format") == "json":
        return Response(status_code=200, content_type=content_types.APPLICATION_JSON, body=document)
    folder = FilePath(assets.__file__).parent
    page = generate_swagger_html(
        # "</" escaped: the document is inlined in a <script> element.
        document.replace("</", "<\\/"),
        (folder / "swagger-ui-bundle.min.js").read_text(encoding="utf-8"),
        (folder / "swagger-ui.min.css").read_text(encoding="utf-8"),
        swagger_base_url="",
        oauth2_config=None,
    )
    return Response(status_code=200, content_type=content_types.TEXT_HTML, body=page)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST)
@tracer.capture_lambda_handler
@metrics.log_metrics
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    if _CONTROL_CHARACTER.search(event.get("path") or ""):
        # Powertools matches routes with "^...$", and "$" also matches before a final newline:
        # "/events\n" would list events, "/events/<id>\n" read one. No route has such a path.
        return {
            "statusCode": 404,
            "headers": {"Content-Type": content_types.APPLICATION_JSON},
            "body": json.dumps({"statusCode": 404, "message": "not found"}),
            "isBase64Encoded": False,
        }
    return app.resolve(event, context)


_CONTROL_CHARACTER = re.compile(r"[\x00-\x1f\x7f]")


# SnapStart (template.yaml): the snapshot holds no connection and has loaded what only some requests
# import; an environment restored from it starts with a new engine and re-reads its settings and
# the database secret (both may have changed since the snapshot was taken).
SNAPSHOT_PRELOAD = (
    "reminders.idempotency",
    "pg8000",
    "sqlalchemy.dialects.postgresql.pg8000",
    "aws_lambda_powertools.utilities.parameters",
    "aws_lambda_powertools.event_handler.openapi.models",
    "aws_lambda_powertools.event_handler.openapi.swagger_ui",
)
snapstart.register(
    before_snapshot=[lambda: snapstart.preload(SNAPSHOT_PRELOAD), dispose_engine],
    # Keys fetched before the snapshot (none today) must not outlive a rotation in a restored copy.
    after_restore=[dispose_engine, unsubscribe.forget_cached_keys],
)
