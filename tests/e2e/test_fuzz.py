"""Schemathesis over the live /openapi.json of `make run`'s runtime, with a bearer token from its
local issuer: valid and invalid requests generated from the document itself. Every response is
no server error and matches the document (status, content type, headers, schema).

A bounded run in `make test` (FUZZ_MAX_EXAMPLES per operation and generation mode, default 25);
`make fuzz` runs a larger one. The session's totals are printed at the end.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from schemathesis.config import SchemathesisConfig

from tests.e2e.runtime import LocalRuntime

pytestmark = pytest.mark.e2e
MAX_EXAMPLES = int(os.environ.get("FUZZ_MAX_EXAMPLES", "25"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
TOTALS: Counter[str] = Counter()


@pytest.fixture(scope="session")
def fuzz_token(product: LocalRuntime) -> str:
    return product.mint_token("fuzz@example.com")


@pytest.fixture(scope="session")
def live_api(product: LocalRuntime) -> Any:
    config = SchemathesisConfig.from_dict({"generation": {"max-examples": MAX_EXAMPLES}})
    return schemathesis.openapi.from_url(f"{product.api}/openapi.json", config=config)


@pytest.fixture(scope="session", autouse=True)
def report_totals() -> Iterator[None]:
    yield
    if TOTALS:
        print(f"\nschemathesis: {TOTALS['requests']} requests, {TOTALS['server_errors']} server errors")


def operations(schema: Any) -> list[Any]:
    return [result.ok() for result in schema.get_all_operations()]


@pytest.mark.parametrize("mode", list(GenerationMode), ids=lambda m: m.value)
def test_no_server_errors_and_every_response_matches_the_document(
    live_api: Any, fuzz_token: str, mode: GenerationMode
) -> None:
    headers = {"Authorization": f"Bearer {fuzz_token}"}
    found = operations(live_api)
    assert len(found) >= 7, [o.label for o in found]
    for operation in found:
        takes_input = any((operation.path_parameters, operation.query, operation.headers, operation.body))
        if mode is GenerationMode.NEGATIVE and not takes_input:
            continue  # nothing invalid can be sent to an operation without parameters (GET /openapi.json)

        @given(case=operation.as_strategy(generation_mode=mode))
        @settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def request(case: Any) -> None:
            response = case.call(headers=headers, timeout=30)
            TOTALS["requests"] += 1
            TOTALS["server_errors"] += response.status_code >= 500
            case.validate_response(response, checks=CHECKS, headers=headers)

        request()


def test_without_a_token_every_protected_operation_answers_a_documented_401(live_api: Any) -> None:
    for operation in operations(live_api):
        _requests_without_token(operation, protected=bool(operation.definition.raw.get("security")))


def _requests_without_token(operation: Any, *, protected: bool) -> None:
    @given(case=operation.as_strategy())
    @settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def request(case: Any) -> None:
        response = case.call(timeout=30)
        TOTALS["requests"] += 1
        TOTALS["server_errors"] += response.status_code >= 500
        assert (response.status_code == 401) == protected, (operation.label, response.status_code)
        case.validate_response(response, checks=CHECKS)

    request()
