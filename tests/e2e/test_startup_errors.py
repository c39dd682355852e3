"""What a developer sees when `make run` cannot start: one clear line, a non-zero exit, no traceback."""

from __future__ import annotations

import socket
import subprocess
from pathlib import Path

import pytest

from tests.e2e.runtime import ROOT, LocalRuntime

pytestmark = pytest.mark.e2e


def run_to_exit(runtime: LocalRuntime) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        runtime.command(), cwd=ROOT, env=runtime.environment(), capture_output=True, text=True, timeout=60
    )


def assert_one_clear_error(result: subprocess.CompletedProcess[str], words: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("devserver: error:")]
    assert len(errors) == 1, result.stderr
    assert words in errors[0]


def test_a_taken_port_is_named(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        runtime = LocalRuntime(ROOT / "template.yaml", tmp_path)
        runtime.api_port = taken.getsockname()[1]
        result = run_to_exit(runtime)
    assert_one_clear_error(result, f"port {runtime.api_port}")
    # What `make run` users can set, and the option for `make run ARGS=...`
    assert "DEVSERVER_API_PORT=<port> make run" in result.stderr
    assert "ARGS='--api-port <port>'" in result.stderr


def test_a_broken_template_is_reported(tmp_path: Path) -> None:
    broken = tmp_path / "template.yaml"
    broken.write_text("Resources:\n  Api: {Type: AWS::Serverless::Function, Properties: {Path: /a/{b}}}\n")
    # A database that fails fast: the template's error is the one reported.
    result = run_to_exit(LocalRuntime(broken, tmp_path / "data", database_url="postgresql://postgres@127.0.0.1:1/x"))
    assert_one_clear_error(result, str(broken))


def test_an_unreachable_database_is_reported(tmp_path: Path) -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    runtime = LocalRuntime(ROOT / "template.yaml", tmp_path, database_url=f"postgresql://postgres@127.0.0.1:{port}/x")
    result = run_to_exit(runtime)
    assert_one_clear_error(result, "cannot reach the database")
