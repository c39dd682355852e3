"""DashboardFunction with API Gateway REST proxy events: files under the right base path, the
sign-in config from its settings (the app client's id from SSM on AWS)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from reminders.settings import dashboard_settings
from tests.support.apigw import rest_event
from tests.support.lambdas import FakeLambdaContext, load_function


@pytest.fixture(autouse=True)
def fresh_settings() -> Iterator[None]:
    dashboard_settings.cache_clear()
    yield
    dashboard_settings.cache_clear()


def get(path: str, *, stage_path: str | None = None, method: str = "GET") -> dict[str, Any]:
    event = rest_event(method, path, as_user=None)
    if path == "/":
        event.update(resource="/", pathParameters=None)
    else:
        event.update(resource="/dashboard/{asset}", pathParameters={"asset": path.rsplit("/", 1)[1]})
    event["requestContext"]["stage"] = "dev"
    event["requestContext"]["path"] = stage_path or path
    reply: dict[str, Any] = load_function("dashboard").lambda_handler(event, FakeLambdaContext())
    return reply


def test_the_page_links_its_files_under_the_stage_when_reached_through_it() -> None:
    # API Gateway's own URL carries the stage; a custom domain (or SAM local) does not.
    through_stage = get("/", stage_path="/dev/")["body"]
    assert 'src="/dev/dashboard/app.js"' in through_stage and 'content="/dev/"' in through_stage
    on_a_domain = get("/", stage_path="/")["body"]
    assert 'src="/dashboard/app.js"' in on_a_domain


def test_files_have_their_types_and_unknown_ones_are_404() -> None:
    assert get("/dashboard/app.js")["headers"]["Content-Type"] == "text/javascript; charset=utf-8"
    assert get("/dashboard/style.css")["headers"]["Content-Type"] == "text/css; charset=utf-8"
    assert get("/dashboard/../app.py")["statusCode"] == 404
    assert get("/dashboard/app.py")["statusCode"] == 404
    assert get("/", method="POST")["statusCode"] == 405


def test_the_config_names_cognitos_endpoints_and_reads_the_client_id_from_ssm(monkeypatch: pytest.MonkeyPatch) -> None:
    import boto3
    from aws_lambda_powertools.utilities.parameters.base import DEFAULT_PROVIDERS
    from moto import mock_aws

    # Powertools keeps one SSM client per process: one made for another region or endpoint must go.
    monkeypatch.delitem(DEFAULT_PROVIDERS, "ssm", raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)

    domain = "https://stack-123.auth.eu-west-1.amazoncognito.com"
    name = f"/stack-{uuid.uuid4().hex[:8]}/dashboard-client-id"
    for key, value in {
        "SIGN_IN_AUTHORIZE_URL": f"{domain}/oauth2/authorize",
        "SIGN_IN_TOKEN_URL": f"{domain}/oauth2/token",
        "SIGN_IN_LOGOUT_URL": f"{domain}/logout",
        "SIGN_IN_CLIENT_ID_PARAMETER": name,
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
    }.items():
        monkeypatch.setenv(key, value)
    with mock_aws():
        boto3.client("ssm").put_parameter(Name=name, Value="abc123client", Type="String")
        config = json.loads(get("/dashboard/config.json")["body"])
        page = get("/")
    assert config["client_id"] == "abc123client"
    assert config["token_url"] == f"{domain}/oauth2/token" and config["logout_url"] == f"{domain}/logout"
    # The page may call the token endpoint (and nothing else off its own origin)
    assert f"connect-src 'self' {domain};" in page["headers"]["Content-Security-Policy"]
