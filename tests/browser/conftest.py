"""A real browser (Debian's chromium, driven by Playwright for Python) against `make run`'s runtime.

Run by `make test-browser`, not `make test`. Without /usr/bin/chromium (apt-get install -y chromium)
or the playwright package (the project's dev extras) every test here skips and says which is missing.
Screenshots of each screen go to .local/browser-artifacts/.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.runtime import ROOT, LocalRuntime
from tests.support.postgres import test_database

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Debian's chromium as Playwright launches it here: no sandbox (root in a container), and none of
# the background traffic a headless test has no use for.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / ".local" / "browser-artifacts"
SCHEDULED_EVENT = ROOT / "tests" / "events" / "eventbridge_scheduled.json"
# The viewer sits in another zone than the events, so both times show.
VIEWER_ZONE = "America/New_York"


def _missing() -> str | None:
    if not CHROMIUM.exists():
        return f"no Chromium at {CHROMIUM}: apt-get install -y chromium (or set CHROMIUM=<path>)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed: pip install -e '.[dev]'"
    return None


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    reason = _missing()
    if reason:
        for item in items:
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def product() -> Iterator[LocalRuntime]:
    folder = Path(tempfile.mkdtemp(prefix="devserver-browser-"))
    folder.chmod(0o755)  # as root, the embedded PostgreSQL runs as another user
    try:
        if os.environ.get("TEST_DATABASE_URL"):
            with test_database() as url:
                runtime = LocalRuntime(ROOT / "template.yaml", folder / "product", url).start()
                yield runtime
                assert runtime.stop() == 0
        else:
            runtime = LocalRuntime(ROOT / "template.yaml", folder / "product").start()
            yield runtime
            assert runtime.stop() == 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield launched
        launched.close()


class Console:
    """What the page reported as errors (console.error, uncaught exceptions)."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def unexpected(self) -> list[str]:
        # Chromium reports every 4xx fetch as an error; the 422s are the ones the test provoked.
        return [e for e in self.errors if "status of 422" not in e]

    # Failed loads are reported twice (console and response); the response line names the URL.


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(timezone_id=VIEWER_ZONE, locale="en-US", accept_downloads=True)
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    console = Console()
    opened.on("console", lambda m: console.errors.append(m.text) if m.type == "error" else None)
    opened.on("pageerror", lambda e: console.errors.append(f"uncaught: {e}"))
    # Which URL a "Failed to load resource" was about (the console message does not say).
    opened.on(
        "response",
        lambda r: (
            console.errors.append(f"{r.status} {r.request.method} {r.url}")
            if r.status >= 400 and r.status != 422
            else None
        ),
    )
    opened.console = console
    yield opened
    context.close()


def screenshot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def run_notifier(product: LocalRuntime) -> dict[str, Any]:
    """One notifier run now, through the Lambda Invoke API (the schedule would run it within a minute)."""
    scheduled = json.loads(SCHEDULED_EVENT.read_text())
    scheduled["version"] = "0"
    scheduled["time"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    reply = product.lambda_client().invoke(FunctionName="NotifierFunction", Payload=json.dumps(scheduled).encode())
    summary: dict[str, Any] = json.loads(reply["Payload"].read())
    return summary
