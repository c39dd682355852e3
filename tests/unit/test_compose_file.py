"""docker-compose.yml holds to the Compose Specification and to what the README promises of it.

The schema is the Compose Specification's own (compose-spec/compose-spec, schema/compose-spec.json,
commit 170098ba07d9, Apache-2.0), vendored in infra/docker/ because CI reaches no schema store.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((ROOT / "infra/docker/compose-spec.schema.json").read_text())
COMPOSE_FILES = [ROOT / "docker-compose.yml", ROOT / "infra/docker/compose.local-images.yml"]


def load(path: Path) -> dict[str, Any]:
    return yaml.safe_load(path.read_text())  # type: ignore[no-any-return]


@pytest.mark.parametrize("path", COMPOSE_FILES, ids=lambda p: p.name)
def test_compose_files_validate_against_the_compose_spec(path: Path) -> None:
    errors = sorted(Draft7Validator(SCHEMA).iter_errors(load(path)), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


def test_images_are_pinned_to_production_postgres_and_the_last_free_localstack() -> None:
    services = load(ROOT / "docker-compose.yml")["services"]
    assert services["postgres"]["image"] == "postgres:16"
    assert services["localstack"]["image"] == "localstack/localstack:4.14.0"


def test_both_services_have_health_checks_and_localstack_runs_what_the_product_uses() -> None:
    compose = load(ROOT / "docker-compose.yml")
    services = compose["services"]
    assert all("test" in service["healthcheck"] for service in services.values())
    enabled = set(services["localstack"]["environment"]["SERVICES"].split(","))
    assert {"ses", "lambda", "events", "secretsmanager", "sqs", "apigateway", "cloudformation"} <= enabled
    assert services["localstack"]["environment"]["LAMBDA_DOCKER_NETWORK"] == compose["networks"]["default"]["name"]


def test_localstack_mounts_the_init_hooks_that_exist() -> None:
    volumes = load(ROOT / "docker-compose.yml")["services"]["localstack"]["volumes"]
    hooks = [v.split(":")[0] for v in volumes if v.split(":")[1] == "/etc/localstack/init/ready.d"]
    assert hooks, volumes
    assert sorted(p.name for p in (ROOT / hooks[0]).glob("*.py")) == ["10-reminders.py"]


def test_compose_itself_accepts_the_files() -> None:
    if shutil.which("docker-compose"):
        command = ["docker-compose"]
    elif (
        shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0
    ):
        command = ["docker", "compose"]
    else:
        pytest.skip("no docker compose command on this machine")
    args = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
    result = subprocess.run([*command, *args, "config", "-q"], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stderr
