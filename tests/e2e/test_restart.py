"""Stopping the runtime stops everything it started, and the next start finds the data kept."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime, timedelta

import pytest
import requests

from tests.e2e.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def processes_mentioning(text: str) -> list[str]:
    listing = subprocess.run(["ps", "-eo", "pid,args"], capture_output=True, text=True, check=True).stdout
    return [line for line in listing.splitlines() if text in line and "ps -eo" not in line]


def test_sigterm_stops_everything_and_a_second_run_keeps_the_data(product: LocalRuntime) -> None:
    # Given a runtime with an event in its database
    auth = {"Authorization": f"Bearer {product.mint_token('kept@example.com')}"}
    created = requests.post(
        f"{product.api}/events",
        json={
            "title": "Kept across restarts",
            "starts_at": (datetime.now(UTC) + timedelta(days=2)).isoformat(),
            "recipients": ["kept@example.com"],
        },
        headers=auth,
        timeout=30,
    )
    assert created.status_code == 201, created.text

    # When it is stopped as Ctrl-C or a service manager stops it
    assert product.stop() == 0

    # Then nothing it started is left running, and a second run on the same data serves the event
    assert processes_mentioning(str(product.data_dir)) == []
    product.lines.clear()
    product.start()
    reply = requests.get(f"{product.api}/events/{created.json()['id']}", headers=auth, timeout=30)
    assert reply.status_code == 200
    assert reply.json()["title"] == "Kept across restarts"
