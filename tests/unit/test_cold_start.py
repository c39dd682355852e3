"""What a cold start loads: each handler imported in a fresh interpreter, as Lambda's init does,
with tracing off (Powertools' rule outside Lambda). Heavy modules that no request on the hot path
needs stay unloaded until a request does need them. (No timing here: `make bench` measures.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys

from tests.support.lambdas import ROOT

IMPORT_AND_LIST_MODULES = """
import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("app", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print(json.dumps(sorted(sys.modules)))
"""


def modules_after_import(function: str, **env: str) -> set[str]:
    environment = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "layers" / "common"),
        "DATABASE_URL": "postgresql://nobody@127.0.0.1:1/none",
        **env,
    }
    environment.pop("POWERTOOLS_TRACE_DISABLED", None)
    out = subprocess.run(
        [sys.executable, "-c", IMPORT_AND_LIST_MODULES, str(ROOT / "functions" / function / "app.py")],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(json.loads(out.stdout.splitlines()[-1]))


def loaded(modules: set[str], package: str) -> bool:
    return any(name == package or name.startswith(f"{package}.") for name in modules)


def test_the_api_loads_no_tracer_no_aws_sdk_and_no_openapi_models_at_start_up() -> None:
    modules = modules_after_import("api")
    assert loaded(modules, "sqlalchemy"), "the handler did not load at all?"
    assert not loaded(modules, "aws_xray_sdk"), "tracing is off, yet the X-Ray SDK was loaded"
    assert not loaded(modules, "boto3"), "no request on the hot path calls AWS"
    assert "aws_lambda_powertools.event_handler.openapi.models" not in modules


def test_the_authorizer_loads_neither_the_database_layer_nor_the_tracer() -> None:
    modules = modules_after_import("authorizer")
    assert loaded(modules, "joserfc")
    for package in ("aws_xray_sdk", "boto3", "sqlalchemy", "pg8000"):
        assert not loaded(modules, package), package


def test_with_tracing_on_the_tracer_is_there_from_the_start() -> None:
    # Inside Lambda (LAMBDA_TASK_ROOT set) with tracing not disabled, Powertools' Tracer records:
    # it is created at start-up (SnapStart snapshots it), not on the first request.
    modules = modules_after_import("api", LAMBDA_TASK_ROOT=str(ROOT), AWS_XRAY_SDK_ENABLED="false")
    assert loaded(modules, "aws_xray_sdk")
