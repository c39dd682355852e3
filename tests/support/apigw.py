"""The one builder of API Gateway REST (v1) proxy events for tests.

It starts from ``tests/events/apigateway_aws_proxy.json`` (what ``sam local generate-event
apigateway aws-proxy`` prints) and fills in what API Gateway would for a given request.
"""

from __future__ import annotations

import base64
import copy
import json
import re
import uuid
from functools import cache
from pathlib import Path
from typing import Any

EVENTS = Path(__file__).resolve().parents[1] / "events"
ROUTES = [
    "/events",
    "/events/{event_id}",
    "/events/{event_id}/notifications",
    "/events/{event_id}/occurrences",
    "/agenda",
    "/calendar/feed",
    "/calendar/{feed}",
    "/unsubscribe/{token}",
    "/suppressions",
    "/suppressions/{email}",
    "/openapi.json",
    "/swagger",
]


@cache
def _template_event() -> dict[str, Any]:
    return json.loads((EVENTS / "apigateway_aws_proxy.json").read_text())


def _resource_for(path: str) -> tuple[str, dict[str, str] | None]:
    for resource in ROUTES:
        pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", resource) + "$"
        match = re.match(pattern, path)
        if match:
            return resource, (match.groupdict() or None)
    return "/{proxy+}", {"proxy": path.lstrip("/")}


def rest_event(
    method: str,
    path: str,
    *,
    body: Any = None,
    raw_body: str | bytes | None = None,
    query: dict[str, str | list[str]] | None = None,
    headers: dict[str, str] | None = None,
    as_user: str | None = "ana@example.com",
) -> dict[str, Any]:
    """A proxy event; ``as_user`` fills ``requestContext.authorizer`` as our token authorizer
    does after verifying that user's token (None: no authorizer context at all)."""
    event = copy.deepcopy(_template_event())
    resource, path_params = _resource_for(path)
    all_headers = {"Accept": "application/json", "Host": "abc123.execute-api.us-east-1.amazonaws.com"}
    if body is not None or raw_body is not None:
        all_headers["Content-Type"] = "application/json"
    all_headers.update(headers or {})
    if raw_body is None and body is not None:
        raw_body = json.dumps(body)
    is_binary = isinstance(raw_body, bytes)
    multi_query = {k: (v if isinstance(v, list) else [v]) for k, v in (query or {}).items()}
    event.update(
        {
            "httpMethod": method,
            "path": path,
            "resource": resource,
            "pathParameters": path_params,
            "stageVariables": None,
            "headers": all_headers,
            "multiValueHeaders": {k: [v] for k, v in all_headers.items()},
            "queryStringParameters": {k: v[-1] for k, v in multi_query.items()} or None,
            "multiValueQueryStringParameters": multi_query or None,
            "body": base64.b64encode(raw_body).decode() if is_binary else raw_body,
            "isBase64Encoded": is_binary,
        }
    )
    context = event["requestContext"]
    context.update(
        {
            "httpMethod": method,
            "path": f"/{context['stage']}{path}",
            "resourcePath": resource,
            "requestId": str(uuid.uuid4()),
        }
    )
    if as_user is not None:
        context["authorizer"] = {"principalId": as_user.lower(), "email": as_user, "sub": as_user.lower()}
    return event


class ApiResponse:
    """What API Gateway would send back for a proxy integration result."""

    def __init__(self, result: dict[str, Any]) -> None:
        self.status: int = result["statusCode"]
        self.headers: dict[str, str] = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
        for key, values in (result.get("multiValueHeaders") or {}).items():
            self.headers.setdefault(key.lower(), values[-1])
        body = result.get("body") or ""
        if result.get("isBase64Encoded"):
            body = base64.b64decode(body).decode()
        self.text: str = body

    def json(self) -> Any:
        return json.loads(self.text)

    def __repr__(self) -> str:
        return f"ApiResponse({self.status}, {self.text[:200]!r})"
