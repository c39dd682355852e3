"""One local runtime per session for each template, started as `make run` starts it, on free ports."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.runtime import ROOT, LocalRuntime
from tests.support.postgres import test_database

FIXTURES = Path(__file__).with_name("fixtures")
# The probe's settings file, in SAM's --env-vars shape (tests/e2e/test_settings.py reads them back).
PROBE_SETTINGS = {
    "Parameters": {"PROBE_SETTING": "every function", "LEASE_SECONDS": "90"},
    "EchoFunction": {
        "LEASE_SECONDS": "300",
        "MAX_SEND_RATE": 2.5,
        "PROBE_FLAG": True,
        # An interpreter setting: this function's workers cannot be forked from the shared zygote.
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    },
}
# Short, so the test of a request that never finishes arriving does not wait long.
PROBE_REQUEST_TIMEOUT = 2


@pytest.fixture(scope="session")
def e2e_database_url() -> Iterator[str | None]:
    """A fresh database on TEST_DATABASE_URL's server; None lets the runtime embed its own."""
    if not os.environ.get("TEST_DATABASE_URL"):
        yield None
        return
    with test_database() as url:
        yield url


@pytest.fixture(scope="session")
def workdir() -> Iterator[Path]:
    # Not pytest's tmp_path: as root, the embedded PostgreSQL runs as another user, who needs o+x.
    folder = Path(tempfile.mkdtemp(prefix="devserver-e2e-"))
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def product(workdir: Path, e2e_database_url: str | None) -> Iterator[LocalRuntime]:
    """The product from template.yaml."""
    runtime = LocalRuntime(ROOT / "template.yaml", workdir / "product", e2e_database_url)
    runtime.start()
    yield runtime
    assert runtime.stop() == 0


@pytest.fixture(scope="session")
def probe(workdir: Path, e2e_database_url: str | None) -> Iterator[LocalRuntime]:
    """A small probe API (tests/e2e/fixtures) run by the same runtime code, from a copy it may edit."""
    shutil.copytree(FIXTURES, workdir / "probe-app")
    settings = workdir / "probe-settings.json"
    settings.write_text(json.dumps(PROBE_SETTINGS))
    runtime = LocalRuntime(
        workdir / "probe-app" / "template.yaml",
        workdir / "probe",
        e2e_database_url,
        extra_args=["--env-vars", str(settings), "--request-timeout", str(PROBE_REQUEST_TIMEOUT)],
    )
    runtime.start()
    yield runtime
    assert runtime.stop() == 0
