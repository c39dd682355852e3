"""The contract over HTTP through `sam local start-api` (what `make test-sam` starts).

Set SAM_API_URL (the API's base URL) and SAM_TOKEN (a bearer token the API's authorizer trusts);
without them these tests are skipped, so the main suite never needs Docker.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests

# Each request starts up to two Lambda containers on a cold SAM; a minute is generous.
TIMEOUT_SECONDS = 60


@dataclass
class SamApi:
    base_url: str
    token: str
    session: requests.Session

    def call(self, method: str, path: str, *, auth: bool = True, **kwargs: Any) -> requests.Response:
        headers = dict(kwargs.pop("headers", {}))
        if auth:
            headers.setdefault("Authorization", f"Bearer {self.token}")
        return self.session.request(
            method, f"{self.base_url}{path}", headers=headers, timeout=TIMEOUT_SECONDS, **kwargs
        )


@pytest.fixture(scope="session")
def sam_api() -> Iterator[SamApi]:
    base_url = os.environ.get("SAM_API_URL")
    token = os.environ.get("SAM_TOKEN")
    if not base_url or not token:
        pytest.skip("SAM_API_URL and SAM_TOKEN are not set (make test-sam sets them)")
    with requests.Session() as session:
        yield SamApi(base_url.rstrip("/"), token, session)
