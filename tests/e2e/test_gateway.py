"""API Gateway behaviour of the local runtime, probed through a small template of its own."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.e2e.runtime import LocalRuntime

pytestmark = pytest.mark.e2e
SAM_EVENT = json.loads((Path(__file__).resolve().parents[1] / "events" / "apigateway_aws_proxy.json").read_text())
# Keys real API Gateway sends that `sam local generate-event` leaves out.
REAL_EXTRAS = {"domainName", "extendedRequestId", "authorizer"}
# Their contents are data, not shape.
DATA_KEYS = {
    "headers",
    "multiValueHeaders",
    "queryStringParameters",
    "multiValueQueryStringParameters",
    "pathParameters",
    "stageVariables",
    "authorizer",
}


def echoed(reply: requests.Response) -> dict[str, Any]:
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def assert_same_shape(ours: dict[str, Any], sam: dict[str, Any], where: str = "event") -> None:
    assert set(sam) <= set(ours), f"{where} lacks {set(sam) - set(ours)}"
    assert set(ours) - set(sam) <= REAL_EXTRAS, f"{where} has extra {set(ours) - set(sam) - REAL_EXTRAS}"
    for key, value in sam.items():
        if isinstance(value, dict) and key not in DATA_KEYS:
            assert isinstance(ours[key], dict), f"{where}.{key} is not an object"
            assert_same_shape(ours[key], value, f"{where}.{key}")


def test_proxy_events_have_the_shape_sam_generates(probe: LocalRuntime) -> None:
    reply = requests.post(
        f"{probe.api}/echo/ana?tag=a&tag=b&q=1",
        data=b'{"test":"body"}',
        headers={"Content-Type": "application/json", "X-Multi": "one"},
        timeout=30,
    )
    event = echoed(reply)["event"]

    assert_same_shape(event, SAM_EVENT)
    assert event["resource"] == "/echo/{name}"
    assert event["path"] == "/echo/ana"
    assert event["httpMethod"] == "POST"
    assert event["pathParameters"] == {"name": "ana"}
    assert event["queryStringParameters"] == {"tag": "b", "q": "1"}
    assert event["multiValueQueryStringParameters"] == {"tag": ["a", "b"], "q": ["1"]}
    assert event["headers"]["X-Multi"] == "one"
    assert event["multiValueHeaders"]["X-Multi"] == ["one"]
    assert event["body"] == '{"test":"body"}'
    assert event["isBase64Encoded"] is False
    context = event["requestContext"]
    assert context["stage"] == "test"
    assert context["path"] == "/test/echo/ana"
    assert context["resourcePath"] == "/echo/{name}"
    assert context["identity"]["sourceIp"] == "127.0.0.1"
    assert abs(context["requestTimeEpoch"] / 1000 - time.time()) < 60


def test_the_stage_prefix_and_greedy_paths_route_like_api_gateway(probe: LocalRuntime) -> None:
    event = echoed(requests.get(f"{probe.api}/test/files/a/b/c.txt", timeout=30))["event"]
    assert event["resource"] == "/files/{proxy+}"
    assert event["pathParameters"] == {"proxy": "a/b/c.txt"}
    assert event["path"] == "/files/a/b/c.txt"


def test_binary_bodies_arrive_base64_encoded(probe: LocalRuntime) -> None:
    payload = bytes(range(256))
    reply = requests.put(
        f"{probe.api}/echo/bin", data=payload, headers={"Content-Type": "application/octet-stream"}, timeout=30
    )
    event = echoed(reply)["event"]
    assert event["isBase64Encoded"] is True
    assert base64.b64decode(event["body"]) == payload


def test_responses_carry_multi_value_headers_and_the_context_is_lambdas(probe: LocalRuntime) -> None:
    reply = requests.get(f"{probe.api}/echo/ctx", timeout=30)
    context = echoed(reply)["context"]
    assert reply.headers["X-Probe"] == "a, b"
    assert context["function_name"] == "EchoFunction"
    assert context["invoked_function_arn"].endswith(":function:EchoFunction")
    assert 0 < context["remaining_ms"] <= 5000


def test_gateway_errors_match_api_gateway(probe: LocalRuntime) -> None:
    boom = requests.get(f"{probe.api}/boom", timeout=30)
    assert (boom.status_code, boom.json()) == (502, {"message": "Internal server error"})
    slow = requests.get(f"{probe.api}/slow", timeout=30)
    assert (slow.status_code, slow.json()) == (504, {"message": "the probe took too long"})  # the template's
    missing = requests.get(f"{probe.api}/nowhere", timeout=30)
    assert (missing.status_code, missing.json()) == (403, {"message": "Missing Authentication Token"})
    wrong_method = requests.delete(f"{probe.api}/boom", timeout=30)
    assert wrong_method.status_code == 403


def test_a_timed_out_worker_is_replaced(probe: LocalRuntime) -> None:
    requests.get(f"{probe.api}/slow", timeout=30)
    assert requests.get(f"{probe.api}/echo/after", timeout=30).status_code == 200


@pytest.mark.parametrize(
    ("headers", "status", "message"),
    [
        ({}, 401, "Unauthorized"),
        ({"Authorization": "unauthorized"}, 401, "Unauthorized"),
        ({"Authorization": "deny"}, 403, "User is not authorized to access this resource with an explicit deny"),
    ],
)
def test_the_token_authorizer_refuses_like_api_gateway(
    probe: LocalRuntime, headers: dict[str, str], status: int, message: str
) -> None:
    reply = requests.get(f"{probe.api}/secure", headers=headers, timeout=30)
    assert (reply.status_code, reply.json()) == (status, {"message": message})


def test_an_allowed_token_puts_the_authorizer_context_in_the_event(probe: LocalRuntime) -> None:
    event = echoed(requests.get(f"{probe.api}/secure", headers={"Authorization": "allow"}, timeout=30))["event"]
    assert event["requestContext"]["authorizer"] == {"email": "ana@example.com", "level": "1", "principalId": "user-1"}


def test_invoke_api_reports_handler_errors_as_lambda_does(probe: LocalRuntime) -> None:
    reply = probe.lambda_client().invoke(FunctionName="BoomFunction", Payload=b"{}")
    error = json.loads(reply["Payload"].read())
    assert reply["FunctionError"] == "Unhandled"
    assert (error["errorType"], error["errorMessage"]) == ("RuntimeError", "boom")
    assert error["stackTrace"]


def test_a_changed_source_file_is_picked_up_without_a_restart(probe: LocalRuntime) -> None:
    source = probe.template.parent / "functions" / "probe.py"
    source.write_text(source.read_text().replace('raise RuntimeError("boom")', 'raise RuntimeError("bang")'))
    deadline = time.monotonic() + 20
    message = "boom"
    client = probe.lambda_client()
    while message == "boom" and time.monotonic() < deadline:
        time.sleep(0.5)
        message = json.loads(client.invoke(FunctionName="BoomFunction", Payload=b"{}")["Payload"].read())[
            "errorMessage"
        ]
    assert message == "bang"
