"""Function settings for `make run`: an env-vars file in SAM's shape reaches the workers, which the
shell's environment does not (as on Lambda)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import PROBE_SETTINGS
from tests.e2e.runtime import ROOT, LocalRuntime
from tests.e2e.test_startup_errors import assert_one_clear_error, run_to_exit

pytestmark = pytest.mark.e2e


def test_a_functions_own_settings_win_over_parameters(probe: LocalRuntime) -> None:
    reply = requests.get(f"{probe.api}/echo/settings", timeout=30)
    environment = reply.json()["environment"]
    assert environment["PROBE_SETTING"] == "every function"
    assert environment["LEASE_SECONDS"] == "300"  # EchoFunction's own, over Parameters' 90
    assert environment["MAX_SEND_RATE"] == "2.5"
    assert environment["PROBE_FLAG"] == "true"
    assert environment["AWS_LAMBDA_FUNCTION_NAME"] == "EchoFunction"


def test_a_functions_python_settings_take_effect(probe: LocalRuntime) -> None:
    # PYTHON* variables act when the interpreter starts, so such a worker is started afresh
    reply = requests.get(f"{probe.api}/echo/interpreter", timeout=30)
    assert "ignore::DeprecationWarning" in reply.json()["warnoptions"]


def test_parameters_reach_every_function(probe: LocalRuntime) -> None:
    reply = probe.lambda_client().invoke(FunctionName="TickFunction", Payload=b"{}")
    environment = json.loads(reply["Payload"].read())["environment"]
    assert environment["PROBE_SETTING"] == PROBE_SETTINGS["Parameters"]["PROBE_SETTING"]
    assert environment["LEASE_SECONDS"] == "90"
    assert "PROBE_FLAG" not in environment


@pytest.mark.parametrize(
    ("content", "words"),
    [
        ("{not json", "is not JSON"),
        ('{"NoSuchFunction": {"A": "1"}}', "'NoSuchFunction' is not a function of the template"),
        ('{"Parameters": {"A": {"nested": 1}}}', "Parameters.A must be a string or a number"),
        ('{"Parameters": {"AWS_LAMBDA_FUNCTION_NAME": "x"}}', "is set by Lambda itself"),
    ],
)
def test_a_bad_settings_file_is_one_clear_error(tmp_path: Path, content: str, words: str) -> None:
    settings = tmp_path / "settings.json"
    settings.write_text(content)
    runtime = LocalRuntime(
        ROOT / "tests" / "e2e" / "fixtures" / "template.yaml",
        tmp_path / "data",
        database_url="postgresql://postgres@127.0.0.1:1/x",
        extra_args=["--env-vars", str(settings)],
    )
    assert_one_clear_error(run_to_exit(runtime), words)


def test_workers_started_afresh_get_the_same_settings(probe: LocalRuntime, tmp_path: Path) -> None:
    # --no-preload: every worker a fresh process, none forked from the zygote
    settings = tmp_path / "settings.json"
    settings.write_text(json.dumps(PROBE_SETTINGS))
    fresh = LocalRuntime(
        probe.template, tmp_path / "data", probe.database_url, extra_args=["--env-vars", str(settings), "--no-preload"]
    ).start()
    try:
        reply = fresh.lambda_client().invoke(FunctionName="TickFunction", Payload=b"{}")
        environment = json.loads(reply["Payload"].read())["environment"]
        assert (environment["PROBE_SETTING"], environment["LEASE_SECONDS"]) == ("every function", "90")
    finally:
        assert fresh.stop() == 0


def test_the_template_s_generated_secrets_are_keys_of_this_data_folder(probe: LocalRuntime) -> None:
    # On AWS the feed and unsubscribe keys are generated secrets ({{resolve:secretsmanager:...}});
    # locally each is made once per data folder, never the template's published text.
    environment = requests.get(f"{probe.api}/echo/settings", timeout=30).json()["environment"]
    for variable, folder in [("CALENDAR_FEED_KEY", "calendar-feed"), ("UNSUBSCRIBE_KEYS", "unsubscribe")]:
        key = environment[variable]
        assert "resolve:" not in key and len(key) >= 32, variable
        assert (probe.data_dir / folder / "key").read_text().strip() == key, variable
