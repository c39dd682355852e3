"""`make token` mints tokens the running runtime accepts, wherever its API port was moved."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import requests

from tests.e2e.runtime import ROOT, LocalRuntime

pytestmark = pytest.mark.e2e


def make_token(email: str, **variables: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DEVSERVER_", "LOCAL_ISSUER_"))}
    result = subprocess.run(
        ["make", "-s", "token", f"EMAIL={email}"],
        cwd=ROOT,
        env={**env, **variables},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_make_token_honours_a_moved_api_port(product: LocalRuntime, tmp_path: Path) -> None:
    # Given the runtime on a port other than 3000, as DEVSERVER_API_PORT=... make run puts it
    assert product.api_port != 3000
    keys = tmp_path / "issuer"  # its signing key only: the port must come from the variable
    keys.mkdir()
    shutil.copy(product.data_dir / "issuer" / "signing-key.json", keys)
    # When a token is made with the same setting
    token = make_token("mover@example.com", DEVSERVER_API_PORT=str(product.api_port), LOCAL_ISSUER_DIR=str(keys))
    # Then the runtime accepts it (its issuer is the runtime's address)
    reply = requests.get(f"{product.api}/events", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert reply.status_code == 200, reply.text


def test_make_token_finds_the_port_of_the_runtime_on_the_same_data(product: LocalRuntime) -> None:
    # `make run ARGS='--api-port ...'` in one shell, `make token` in another: no port given here
    token = make_token("other-shell@example.com", DEVSERVER_DATA_DIR=str(product.data_dir))
    reply = requests.get(f"{product.api}/events", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert reply.status_code == 200, reply.text


def test_the_authorizer_runs_once_per_token_then_its_answer_is_cached(product: LocalRuntime) -> None:
    # API Gateway caches a TOKEN authorizer's policy for ReauthorizeEvery (300 s in template.yaml)
    headers = {"Authorization": f"Bearer {product.mint_token('cached@example.com')}"}
    for limit in (11, 12, 13):
        assert requests.get(f"{product.api}/events?limit={limit}", headers=headers, timeout=30).status_code == 200
    lines = [product.wait_for(rf"request\s+GET /events\?limit={limit} 200", 30) for limit in (11, 12, 13)]
    assert ["AuthorizerFunction" in line for line in lines] == [True, False, False], lines
    assert all("ApiFunction" in line for line in lines)
