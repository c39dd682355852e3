"""DashboardFunction: the dashboard's static files at `GET /` and `GET /dashboard/{asset}`.

Plain HTML, CSS and JavaScript modules, served as they are in static/ (nothing to build). The page
is one more client of the API: it signs in with the OAuth 2 code flow and PKCE (config.json says
where) and sends the token on its API calls; these routes themselves need none.
Deliberately without Powertools' resolver and tracer: a handful of files needs neither, and the
cold start stays small.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from reminders.settings import dashboard_settings

STATIC = Path(__file__).resolve().parent / "static"
CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
# Every file the page is made of, read once per environment (a few kilobytes).
ASSETS = {path.name: path for path in STATIC.iterdir() if path.suffix in CONTENT_TYPES}


def _reply(status: int, content_type: str, body: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "statusCode": status,
        "headers": {
            "Content-Type": content_type,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            **(headers or {}),
        },
        "body": body,
        "isBase64Encoded": False,
    }


def _client_id() -> str:
    settings = dashboard_settings()
    if settings.sign_in_client_id or not settings.sign_in_client_id_parameter:
        return settings.sign_in_client_id
    from aws_lambda_powertools.utilities import parameters

    return str(parameters.get_parameter(settings.sign_in_client_id_parameter, max_age=300))


def sign_in_config() -> dict[str, str]:
    settings = dashboard_settings()
    return {
        "authorize_url": settings.sign_in_authorize_url,
        "token_url": settings.sign_in_token_url,
        "logout_url": settings.sign_in_logout_url,
        "client_id": _client_id(),
        "scope": settings.sign_in_scope,
    }


def _content_security_policy() -> str:
    """Scripts and styles from this origin only; API calls here and to the token endpoint."""
    token_url = urlsplit(dashboard_settings().sign_in_token_url)
    token_origin = f" {token_url.scheme}://{token_url.netloc}" if token_url.netloc else ""
    return (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        f"connect-src 'self'{token_origin}; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
    )


def base_path(event: dict[str, Any]) -> str:
    """The API's base path as the browser reached it: "/<stage>/" on API Gateway's own URL, "/" on a
    custom domain or locally (the page's links and API calls start there)."""
    context = event.get("requestContext") or {}
    stage, path = context.get("stage"), str(context.get("path") or "")
    if stage and stage != "$default" and (path == f"/{stage}" or path.startswith(f"/{stage}/")):
        return f"/{stage}/"
    return "/"


def lambda_handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    if event.get("httpMethod") not in ("GET", "HEAD"):
        return _reply(405, "application/json", json.dumps({"statusCode": 405, "message": "Method not allowed"}))
    asset = (event.get("pathParameters") or {}).get("asset") or "index.html"
    if asset == "config.json":
        return _reply(200, "application/json", json.dumps(sign_in_config()))
    path = ASSETS.get(asset)
    if path is None:
        return _reply(404, "application/json", json.dumps({"statusCode": 404, "message": "Not found"}))
    headers = {"Content-Security-Policy": _content_security_policy()} if path.suffix == ".html" else {}
    headers["Referrer-Policy"] = "no-referrer"
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".html":
        text = text.replace("{{base}}", base_path(event))
    return _reply(200, CONTENT_TYPES[path.suffix], text, headers)
