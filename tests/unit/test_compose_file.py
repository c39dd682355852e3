"""docker-compose.yml holds to the Compose Specification and to what the README promises of it.

The schema is the Compose Specification's own (compose-spec/compose-spec, schema/compose-spec.json,
commit 170098ba07d9, Apache-2.0), vendored in infra/docker/ because CI reaches no schema store.
"""

from __future__ import annotations

import json
import os
import re
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
    assert sorted(p.name for p in (ROOT / hooks[0]).glob("*.py")) == [
        "05-lambda-runtime.py",
        "06-token-authorizers.py",
        "10-reminders.py",
    ]


def compose_commands() -> list[list[str]]:
    """Every compose this machine has: Debian's docker-compose v1 and the v2 plugin (`docker compose`)."""
    commands = []
    if shutil.which("docker-compose"):
        commands.append(["docker-compose"])
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        commands.append(["docker", "compose"])
    return commands


def compose_config(command: list[str], **env: str) -> dict[str, Any]:
    args = [arg for path in COMPOSE_FILES for arg in ("-f", str(path))]
    result = subprocess.run(
        [*command, *args, "config"], capture_output=True, text=True, cwd=ROOT, env={**os.environ, **env}
    )
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)  # type: ignore[no-any-return]


def test_compose_itself_accepts_the_files() -> None:
    commands = compose_commands()
    if not commands:
        pytest.skip("no docker compose command on this machine")
    for command in commands:
        assert compose_config(command)["services"].keys() == {"postgres", "localstack"}


def test_each_project_gets_its_own_network_and_localstack_runs_functions_on_it() -> None:
    # Two projects on one network: `down -v` of one fails on the network the other holds, and two
    # containers answer to `postgres`. The network is named per project (COMPOSE_NETWORK).
    compose = load(ROOT / "docker-compose.yml")
    name = compose["networks"]["default"]["name"]
    assert name == "${COMPOSE_NETWORK:-event-reminders}"
    assert compose["services"]["localstack"]["environment"]["LAMBDA_DOCKER_NETWORK"] == name
    commands = compose_commands()
    if not commands:
        pytest.skip("no docker compose command on this machine to resolve the names")
    for command in commands:
        for network in ("event-reminders", "event-reminders-ci"):
            env = {"COMPOSE_NETWORK": network} if network != "event-reminders" else {}
            resolved = compose_config(command, **env)
            assert resolved["networks"]["default"]["name"] == network, command
            assert resolved["services"]["localstack"]["environment"]["LAMBDA_DOCKER_NETWORK"] == network, command


def test_the_test_scripts_use_networks_of_their_own() -> None:
    networks = {}
    for script in ("test-sam.sh", "test-localstack.sh"):
        text = (ROOT / "infra/ci" / script).read_text()
        found = re.search(r"\bCOMPOSE_NETWORK=\"\$(\w+)\"", text)
        assert found, f"{script} does not set COMPOSE_NETWORK"
        value = re.search(rf"^{found.group(1)}=\"([\w-]+)\"", text, re.MULTILINE)
        assert value, f"{script}: {found.group(1)} is not a plain name"
        networks[script] = value.group(1)
    assert len(set(networks.values())) == len(networks) and "event-reminders" not in networks.values(), networks


def test_the_readme_docker_steps_need_no_compose_v2_only_flags() -> None:
    # docker-compose v1 (Debian's docker-compose) has no --wait; the README's steps run with both.
    readme = (ROOT / "README.md").read_text()
    section = readme[readme.index("## With Docker") :]
    section = section[: section.find("\n## ", 3)] if "\n## " in section[3:] else section
    commands = [line.strip() for line in section.splitlines() if line.startswith("    ")]
    assert commands, "no commands in the README's With Docker section"
    assert not [c for c in commands if "compose" in c and "--wait" in c], commands
