"""One local runtime per session for each template, started as `make run` starts it, on free ports."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.runtime import ROOT, LocalRuntime
from tests.support.postgres import test_database

FIXTURES = Path(__file__).with_name("fixtures")


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
    runtime = LocalRuntime(workdir / "probe-app" / "template.yaml", workdir / "probe", e2e_database_url)
    runtime.start()
    yield runtime
    assert runtime.stop() == 0
