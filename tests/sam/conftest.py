"""The contract over HTTP through a Docker-backed runtime: `sam local start-api` (make test-sam) or
LocalStack's API Gateway with the stack deployed into it (make test-localstack).

The tier script sets CONTRACT_API_URL (the API's base URL) and CONTRACT_ISSUER_DIR/CONTRACT_ISSUER_URL
(the local issuer whose JWKS the deployed authorizer trusts: the tests mint and forge tokens with its
key). CONTRACT_GATEWAY_RESPONSES says how much of the template's gateway responses the runtime applies:
`templates` (API Gateway, make run: status and body), `status` (LocalStack 4.14: their status codes,
its own JSON body) or `none` (SAM's emulator). Without CONTRACT_API_URL these tests are skipped, so
the main suite never needs Docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from devserver.issuer import LocalIssuer

# A request may start two Lambda containers (authorizer, API) on a cold runtime; on a loaded 2-core
# machine LocalStack alone may give each a minute to start (LAMBDA_RUNTIME_ENVIRONMENT_TIMEOUT).
TIMEOUT_SECONDS = 150
ANA, BEN = "ana@example.com", "ben@example.com"


@dataclass
class ContractApi:
    base_url: str
    issuer: LocalIssuer
    runtime: str
    gateway_responses: str
    session: requests.Session
    tokens: dict[str, str]

    @property
    def token(self) -> str:
        return self.tokens[ANA]

    def call(
        self, method: str, path: str, *, auth: bool = True, as_user: str = ANA, **kwargs: Any
    ) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers.setdefault("Authorization", f"Bearer {self.tokens[as_user]}")
        return self.session.request(
            method, f"{self.base_url}{path}", headers=headers, timeout=TIMEOUT_SECONDS, **kwargs
        )


@pytest.fixture(scope="session")
def contract_api() -> Iterator[ContractApi]:
    base_url = os.environ.get("CONTRACT_API_URL")
    issuer_dir = os.environ.get("CONTRACT_ISSUER_DIR")
    issuer_url = os.environ.get("CONTRACT_ISSUER_URL")
    if not base_url or not issuer_dir or not issuer_url:
        pytest.skip(
            "CONTRACT_API_URL, CONTRACT_ISSUER_DIR and CONTRACT_ISSUER_URL are not set (make test-sam sets them)"
        )
    issuer = LocalIssuer(Path(issuer_dir), issuer_url)
    with requests.Session() as session:
        yield ContractApi(
            base_url=base_url.rstrip("/"),
            issuer=issuer,
            runtime=os.environ.get("CONTRACT_RUNTIME", "a deployed runtime"),
            gateway_responses=os.environ.get("CONTRACT_GATEWAY_RESPONSES", "templates"),
            session=session,
            tokens={user: issuer.mint(user) for user in (ANA, BEN)},
        )


# The contract tests were written against `sam_api`; the name stays for them.
@pytest.fixture(scope="session")
def sam_api(contract_api: ContractApi) -> ContractApi:
    return contract_api
