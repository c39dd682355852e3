"""API Gateway (REST, v1) in front of the function workers: routes and stage from the template.

Hand-written: no maintained library emulates API Gateway REST proxy events and Lambda
authorizers without Docker (SAM CLI's start-api runs functions in containers).
"""

from __future__ import annotations

import base64
import fnmatch
import functools
import json
import os
import re
import threading
import time
import uuid
import zlib
from datetime import UTC, datetime
from http import HTTPStatus
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote, urlsplit

from devserver import console
from devserver.serving import BoundedHandler
from devserver.template import ACCOUNT_ID, API_ID, REGION, App, Authorizer, Route, path_parameters
from devserver.workers import FunctionPool, Outcome

# API Gateway's own responses by gateway response type; the template may override each one.
INTERNAL_ERROR = ("DEFAULT_5XX", 502, {"message": "Internal server error"})
TIMED_OUT = ("INTEGRATION_TIMEOUT", 504, {"message": "Endpoint request timed out"})
NO_ROUTE = ("MISSING_AUTHENTICATION_TOKEN", 403, {"message": "Missing Authentication Token"})
UNAUTHORIZED = ("UNAUTHORIZED", 401, {"message": "Unauthorized"})
DENIED = ("ACCESS_DENIED", 403, {"message": "User is not authorized to access this resource with an explicit deny"})
AUTHORIZER_FAILED = ("AUTHORIZER_FAILURE", 500, {"message": None})
TOO_LARGE = ("REQUEST_TOO_LARGE", 413, {"message": "Request Too Long"})
# What the front end answers for a request that is not HTTP it can read, or arrives too slowly.
BAD_REQUEST = ("DEFAULT_4XX", 400, {"message": "Bad Request"})
REQUEST_TIMEOUT = ("DEFAULT_4XX", 408, {"message": "Request Timeout"})
# Cached authorizer answers kept before the expired ones are dropped (many tokens, e.g. a fuzzer's).
MAX_CACHED_POLICIES = 10_000
# API Gateway REST's integration timeout (a slower function gets a 504 while it runs on in AWS).
INTEGRATION_TIMEOUT_SECONDS = 29.0
# The methods an API Gateway resource can have; ANY means these, and nothing else routes.
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
GatewayReply = tuple[str, int, dict[str, Any]]
# $context.authorizer.<key> in a gateway response template (the only $context variables we fill).
CONTEXT_VARIABLE = re.compile(r"\$context\.authorizer\.(\w+)")


class LocalSite(Protocol):
    """Local-only pages on the API port (the issuer's sign-in, the inbox): a reply, or None when
    the path is not theirs."""

    def handle(
        self, method: str, path: str, query: str, headers: list[tuple[str, str]], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes] | None: ...


class Gateway:
    """Everything API Gateway does between the socket and the function; the HTTP handler is thin."""

    def __init__(
        self,
        app: App,
        pools: dict[str, FunctionPool],
        extra_routes: dict[str, Any],
        sites: list[LocalSite] | None = None,
    ) -> None:
        self.app = app
        self.pools = pools
        # Local-only GET routes (the OIDC issuer's documents), served before the API's routes.
        self.extra_routes = extra_routes
        self.sites = sites or []
        # API Gateway caches a TOKEN authorizer's policy per token for authorizerResultTtlInSeconds;
        # with it, what that policy decided for each method ARN so far.
        self._policies: dict[tuple[str, str], tuple[float, dict[str, Any], dict[str, bool]]] = {}
        self._policies_lock = threading.Lock()

    def gateway_reply(
        self, reply: GatewayReply, authorizer_context: dict[str, str] | None = None
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        kind, status, body = reply
        # An unset response type falls back to DEFAULT_4XX / DEFAULT_5XX, as in API Gateway.
        fallback = "DEFAULT_4XX" if status < 500 else "DEFAULT_5XX"
        custom = self.app.gateway_responses.get(kind) or self.app.gateway_responses.get(fallback)
        if custom is None:
            return _json_reply(status, body)
        custom_status, template = custom
        if kind not in self.app.gateway_responses:
            custom_status = 0  # a DEFAULT_* response keeps the specific status
        if template:
            # API Gateway fills $context.authorizer.<key> from a denying authorizer's context.
            context = authorizer_context or {}
            filled = CONTEXT_VARIABLE.sub(lambda m: _json_string_content(context.get(m.group(1), "")), template)
            return custom_status or status, [("Content-Type", "application/json")], filled.encode()
        return _json_reply(custom_status or status, body)

    def match(self, method: str, path: str) -> tuple[Route, dict[str, str]] | None:
        if method not in METHODS:
            return None
        for route in self.app.routes:
            found = route.pattern.match(path)
            if found and route.method in (method, "ANY"):
                return route, path_parameters(route, found)
        return None

    def is_binary(self, content_type: str) -> bool:
        media = content_type.split(";")[0].strip().lower()
        return any(fnmatch.fnmatch(media, pattern.lower()) for pattern in self.app.binary_media_types)

    def build_event(
        self,
        *,
        method: str,
        path: str,
        route: Route,
        params: dict[str, str],
        query: str,
        headers: list[tuple[str, str]],
        body: bytes,
        source_ip: str,
    ) -> dict[str, Any]:
        single: dict[str, str] = {}
        multi: dict[str, list[str]] = {}
        for name, value in headers:
            single[name] = value
            multi.setdefault(name, []).append(value)
        query_multi: dict[str, list[str]] = {}
        for name, value in parse_qsl(query, keep_blank_values=True):
            query_multi.setdefault(name, []).append(value)
        content_type = next((v for k, v in headers if k.lower() == "content-type"), "")
        text_body: str | None = None
        encoded = False
        if body:
            try:
                if self.is_binary(content_type):
                    raise UnicodeDecodeError("utf-8", body, 0, 1, "binary media type")
                text_body = body.decode("utf-8")
            except UnicodeDecodeError:
                text_body, encoded = base64.b64encode(body).decode(), True
        now = time.time()
        user_agent = single.get("User-Agent") or next((v for k, v in headers if k.lower() == "user-agent"), None)
        stage = self.app.stage
        return {
            "body": text_body,
            "resource": route.resource,
            "path": path,
            "httpMethod": method,
            "isBase64Encoded": encoded,
            "queryStringParameters": {k: v[-1] for k, v in query_multi.items()} or None,
            "multiValueQueryStringParameters": query_multi or None,
            "pathParameters": params or None,
            "stageVariables": None,
            "headers": single or None,
            "multiValueHeaders": multi or None,
            "requestContext": {
                "accountId": ACCOUNT_ID,
                "resourceId": format(zlib.crc32(route.resource.encode()) % 0xFFFFFF, "06x"),
                "stage": stage,
                "requestId": str(uuid.uuid4()),
                "extendedRequestId": base64.b64encode(os.urandom(10)).decode(),
                "requestTime": _request_time(int(now)),
                "requestTimeEpoch": int(now * 1000),
                "identity": {
                    "cognitoIdentityPoolId": None,
                    "accountId": None,
                    "cognitoIdentityId": None,
                    "caller": None,
                    "accessKey": None,
                    "sourceIp": source_ip,
                    "cognitoAuthenticationType": None,
                    "cognitoAuthenticationProvider": None,
                    "userArn": None,
                    "userAgent": user_agent,
                    "user": None,
                },
                "domainName": single.get("Host", "127.0.0.1"),
                "path": f"/{stage}{path}",
                "resourcePath": route.resource,
                "httpMethod": method,
                "apiId": API_ID,
                "protocol": "HTTP/1.1",
            },
        }

    def method_arn(self, method: str, path: str) -> str:
        return f"arn:aws:execute-api:{REGION}:{ACCOUNT_ID}:{API_ID}/{self.app.stage}/{method}{path}"

    def authorize(
        self, authorizer: Authorizer, method: str, path: str, headers: list[tuple[str, str]], trail: list[str]
    ) -> tuple[GatewayReply, dict[str, str]] | dict[str, Any]:
        """API Gateway's TOKEN authorizer: an error response (with the denying authorizer's
        context, for the response template), or the requestContext.authorizer."""
        token = next((v for k, v in headers if k.lower() == authorizer.identity_header.lower()), None)
        if not token or (authorizer.validation is not None and not authorizer.validation.match(token)):
            return UNAUTHORIZED, {}
        arn = self.method_arn(method, path)
        key = (authorizer.name, token)
        with self._policies_lock:
            cached = self._policies.get(key)
        if cached is not None and cached[0] > time.monotonic():
            policy, decisions = cached[1], cached[2]
        else:
            event = {"type": "TOKEN", "authorizationToken": token, "methodArn": arn}
            outcome = self.invoke(authorizer.function, event, trail)
            if outcome.error is not None or outcome.timed_out or outcome.result is None:
                if outcome.error and outcome.error.get("errorMessage") == "Unauthorized":
                    return UNAUTHORIZED, {}
                return AUTHORIZER_FAILED, {}
            policy = json.loads(outcome.result)
            if not isinstance(policy, dict) or "policyDocument" not in policy:
                return AUTHORIZER_FAILED, {}
            decisions = {}
            if authorizer.ttl_seconds > 0:
                now = time.monotonic()
                with self._policies_lock:
                    if len(self._policies) >= MAX_CACHED_POLICIES:
                        self._policies = {k: v for k, v in self._policies.items() if v[0] > now}
                    self._policies[key] = (now + authorizer.ttl_seconds, policy, decisions)
        context = {k: str(v) for k, v in (policy.get("context") or {}).items()}
        allowed = decisions.get(arn)
        if allowed is None:
            if len(decisions) >= MAX_CACHED_POLICIES:  # one token over very many paths
                decisions.clear()
            allowed = decisions[arn] = _allows(policy.get("policyDocument") or {}, arn)
        if not allowed:
            return DENIED, context
        return {**context, "principalId": policy.get("principalId")}

    def invoke(self, function: str, event: Any, trail: list[str]) -> Outcome:
        outcome = self.pools[function].invoke(event, timeout=INTEGRATION_TIMEOUT_SECONDS)
        # One console line per request: it lists the invocations it took.
        state = "" if outcome.state == "ok" else f" {outcome.state}"
        trail.append(f"{function} {outcome.duration_ms:.0f} ms{state}")
        return outcome

    def respond(self, outcome: Outcome) -> tuple[int, list[tuple[str, str]], bytes]:
        if outcome.timed_out:
            return self.gateway_reply(TIMED_OUT)
        if outcome.error is not None or outcome.result is None:
            return self.gateway_reply(INTERNAL_ERROR)
        try:
            reply = json.loads(outcome.result)
            status = int(reply.get("statusCode", 200))
            body = reply.get("body") or ""
            data = base64.b64decode(body) if reply.get("isBase64Encoded") else str(body).encode()
            headers: list[tuple[str, str]] = [(k, str(v)) for k, v in (reply.get("headers") or {}).items()]
            for name, values in (reply.get("multiValueHeaders") or {}).items():
                headers.extend((name, str(v)) for v in values if (name, str(v)) not in headers)
        except (ValueError, TypeError, AttributeError):
            console.line("api", "malformed Lambda proxy response -> 502")
            return self.gateway_reply(INTERNAL_ERROR)
        return status, headers, data


@functools.lru_cache(maxsize=4)
def _request_time(second: int) -> str:
    """API Gateway's requestTime (``01/Dec/2026:09:00:00 +0000``), formatted once a second."""
    return datetime.fromtimestamp(second, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000")


def _allows(document: dict[str, Any], arn: str) -> bool:
    """IAM evaluation for execute-api: an explicit Deny wins, otherwise an Allow is needed."""
    allowed = False
    statements = document.get("Statement") or []
    for statement in statements if isinstance(statements, list) else [statements]:
        actions = statement.get("Action", [])
        resources = statement.get("Resource", [])
        actions = actions if isinstance(actions, list) else [actions]
        resources = resources if isinstance(resources, list) else [resources]
        if not any(fnmatch.fnmatchcase("execute-api:Invoke", a) or a == "*" for a in actions):
            continue
        if any(fnmatch.fnmatchcase(arn, r) for r in resources):
            if statement.get("Effect") == "Deny":
                return False
            allowed = allowed or statement.get("Effect") == "Allow"
    return allowed


def _json_string_content(value: str) -> str:
    """``value`` escaped to sit inside a JSON string literal of a response template."""
    return json.dumps(value)[1:-1]


def _json_reply(status: int, body: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    return status, [("Content-Type", "application/json")], json.dumps(body).encode()


def log_invocation(function: str, source: str, outcome: Outcome) -> None:
    console.line("invoke", f"{function} ({source}) {outcome.request_id} {outcome.state} {outcome.duration_ms:.0f} ms")


def handler_class(gateway: Gateway) -> type[BoundedHandler]:
    class ApiHandler(BoundedHandler):
        def handle_any(self) -> None:
            started = time.monotonic()
            split = urlsplit(self.path)
            path = unquote(split.path) or "/"
            trail: list[str] = []
            body = self.request_body()
            if isinstance(body, HTTPStatus):
                reply = {HTTPStatus.REQUEST_ENTITY_TOO_LARGE: TOO_LARGE, HTTPStatus.BAD_REQUEST: BAD_REQUEST}
                status, headers, data = gateway.gateway_reply(reply.get(body, REQUEST_TIMEOUT))
            else:
                try:
                    status, headers, data = self._dispatch(path, split.query, body, trail)
                except Exception as exc:  # the runtime's own fault: say so in one line, answer like API Gateway
                    console.line("api", f"{self.command} {path}: {type(exc).__name__}: {exc}")
                    status, headers, data = gateway.gateway_reply(INTERNAL_ERROR)
            self.send_json(status, headers, data)
            elapsed = (time.monotonic() - started) * 1000
            invoked = f" ({', '.join(trail)})" if trail else ""
            console.line("request", f"{self.command} {self.path} {status} {elapsed:.0f} ms{invoked}")

        def error_body(self, code: int, message: str) -> tuple[list[tuple[str, str]], bytes]:
            kind = "DEFAULT_4XX" if code < 500 else "DEFAULT_5XX"
            _, headers, data = gateway.gateway_reply((kind, code, {"message": message}))
            return headers, data

        def _dispatch(
            self, path: str, query: str, body: bytes, trail: list[str]
        ) -> tuple[int, list[tuple[str, str]], bytes]:
            if self.command == "GET" and path in gateway.extra_routes:
                return _json_reply(200, gateway.extra_routes[path]())
            if path.startswith("/_local/"):
                for site in gateway.sites:
                    reply = site.handle(self.command, path, query, list(self.headers.items()), body)
                    if reply is not None:
                        return reply
            stage_prefix = f"/{gateway.app.stage}"
            if path == stage_prefix or path.startswith(stage_prefix + "/"):
                path = path[len(stage_prefix) :] or "/"
            found = gateway.match(self.command, path)
            if found is None:
                return gateway.gateway_reply(NO_ROUTE)
            route, params = found
            headers = list(self.headers.items())
            present = {name.lower() for name, _ in headers}
            # What API Gateway's front end adds (sam local start-api adds the same).
            for name, value in (
                ("X-Forwarded-For", self.client_address[0]),
                ("X-Forwarded-Port", str(self.connection.getsockname()[1])),
                ("X-Forwarded-Proto", "http"),
            ):
                if name.lower() not in present:
                    headers.append((name, value))
            authorizer_context = None
            if route.authorizer is not None:
                decision = gateway.authorize(route.authorizer, self.command, path, headers, trail)
                if isinstance(decision, tuple):
                    return gateway.gateway_reply(*decision)
                authorizer_context = decision
            event = gateway.build_event(
                method=self.command,
                path=path,
                route=route,
                params=params,
                query=query,
                headers=headers,
                body=body,
                source_ip=self.client_address[0],
            )
            if authorizer_context is not None:
                event["requestContext"]["authorizer"] = authorizer_context
            return gateway.respond(gateway.invoke(route.function, event, trail))

    return ApiHandler
