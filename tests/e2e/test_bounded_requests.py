"""API Gateway's front end locally: any method and any malformed or unfinished request gets a JSON
answer, and no request holds a gateway thread for longer than the request timeout."""

from __future__ import annotations

import select
import socket

import pytest
import requests

from tests.e2e.runtime import LocalRuntime

pytestmark = pytest.mark.e2e
INVOCATIONS = "/2015-03-31/functions/EchoFunction/invocations"


def raw_exchange(port: int, data: bytes, trickle: list[bytes] | None = None) -> tuple[bytes, int]:
    """Send ``data``, then each piece of ``trickle`` half a second apart until the server answers;
    read until the server closes. The reply, and how many pieces went out."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=60) as connection:
        connection.sendall(data)
        for piece in trickle or []:
            if select.select([connection], [], [], 0.5)[0]:
                break  # the server has answered or closed
            try:
                connection.sendall(piece)
            except OSError:
                break
            sent += 1
        reply = b""
        try:
            while chunk := connection.recv(65536):
                reply += chunk
        except ConnectionResetError:
            pass  # closed with unread input queued: Linux resets instead of closing
        return reply, sent


@pytest.mark.parametrize("method", ["TRACE", "CONNECT", "BREW"])
def test_an_unknown_method_gets_the_templates_json_not_found_even_without_a_token(
    product: LocalRuntime, method: str
) -> None:
    reply = requests.request(method, f"{product.api}/events", timeout=30)
    # MISSING_AUTHENTICATION_TOKEN, which template.yaml maps to the contract's 404
    assert (reply.status_code, reply.json()) == (404, {"statusCode": 404, "message": "Not found"})
    assert reply.headers["Content-Type"] == "application/json"


def test_a_lower_case_method_is_not_get(product: LocalRuntime) -> None:
    reply, _ = raw_exchange(product.api_port, b"get /events HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert reply.startswith(b"HTTP/1.1 404"), reply
    assert reply.endswith(b'{"statusCode": 404, "message": "Not found"}')


def test_an_unknown_method_on_a_template_without_mappings_gets_api_gateways_403(probe: LocalRuntime) -> None:
    reply = requests.request("TRACE", f"{probe.api}/echo/x", timeout=30)
    assert (reply.status_code, reply.json()) == (403, {"message": "Missing Authentication Token"})


def test_a_request_that_is_not_http_gets_json(product: LocalRuntime) -> None:
    reply, _ = raw_exchange(product.api_port, b"NONSENSE\r\n\r\n")
    head, _, body = reply.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400"), reply
    assert b"Content-Type: application/json" in head
    assert b'"message"' in body


def test_the_invoke_api_answers_an_unknown_method_in_json(probe: LocalRuntime) -> None:
    reply = requests.request("TRACE", f"{probe.lambda_endpoint}{INVOCATIONS}", timeout=30)
    assert reply.status_code == 404
    assert reply.headers["x-amzn-ErrorType"] == "UnknownOperationException"
    assert "message" in reply.json()


@pytest.mark.parametrize("port", ["api", "lambda"])
def test_a_request_that_declares_more_body_than_it_sends_is_cut_off(probe: LocalRuntime, port: str) -> None:
    # Given a request that promises 100 bytes of body and sends 3
    target, path = (probe.api_port, "/echo/x") if port == "api" else (probe.lambda_port, INVOCATIONS)
    head = f"POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"

    # When the client then waits, and never sends the rest
    reply, _ = raw_exchange(target, head.encode() + b"{} ")

    # Then the runtime answers 408 in JSON and closes the connection, and serves the next request
    status, _, body = reply.partition(b"\r\n\r\n")
    assert status.startswith(b"HTTP/1.1 408"), reply
    assert b"Connection: close" in status
    assert b"message" in body
    assert requests.get(f"{probe.api}/echo/after", timeout=30).status_code == 200


def test_headers_trickled_in_a_line_at_a_time_are_cut_off(probe: LocalRuntime) -> None:
    # A slowloris: each piece comes well within any per-read timeout, the whole never ends
    pieces = [b"X-Slow: y\r\n"] * 60
    reply, sent = raw_exchange(probe.api_port, b"GET /echo/x HTTP/1.1\r\n", trickle=pieces)
    assert sent < len(pieces), "the runtime kept reading a request that never ends"
    assert reply == b"" or reply.startswith(b"HTTP/1.1 408"), reply
    assert requests.get(f"{probe.api}/echo/after", timeout=30).status_code == 200
