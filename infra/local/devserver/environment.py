"""Each function worker's environment: what Lambda sets, the template's variables, and the
developer's own settings from an env-vars file in SAM's ``--env-vars`` shape.

    {"Parameters": {"LOG_LEVEL": "DEBUG"},                              every function
     "NotifierFunction": {"LEASE_SECONDS": "300", "MAX_SEND_RATE": 2}}  one function

Unlike SAM, a variable the template does not declare is set too: settings left to the code's
defaults (LEASE_SECONDS, RECORD_EVERY, ...) can be changed without editing the template.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from pathlib import Path

from devserver.template import REGION, FunctionSpec

# Lambda sets these itself; neither the template nor a settings file may change them.
RESERVED = ("AWS_LAMBDA_", "_HANDLER", "_X_AMZN_", "LAMBDA_")


class EnvVarsError(ValueError):
    """The env-vars file cannot be used (one line, for the console)."""


def read_env_vars(path: Path | None, functions: dict[str, FunctionSpec]) -> dict[str, dict[str, str]]:
    """The file's settings by function (``Parameters`` under the key ``""``), checked."""
    if path is None:
        return {}
    try:
        data = json.loads(Path(path).read_text())
    except OSError as exc:
        raise EnvVarsError(f"env-vars file {path}: {exc.strerror}") from None
    except ValueError as exc:
        raise EnvVarsError(f"env-vars file {path} is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EnvVarsError(f'env-vars file {path}: expected {{"Parameters": {{...}}, "<Function>": {{...}}}}')
    settings: dict[str, dict[str, str]] = {}
    for key, variables in data.items():
        if key != "Parameters" and key not in functions:
            known = ", ".join(["Parameters", *sorted(functions)])
            raise EnvVarsError(f"env-vars file {path}: {key!r} is not a function of the template ({known})")
        if not isinstance(variables, dict):
            raise EnvVarsError(f"env-vars file {path}: {key} must map variable names to values")
        checked: dict[str, str] = {}
        for name, value in variables.items():
            if name.startswith(RESERVED):
                raise EnvVarsError(f"env-vars file {path}: {key}.{name} is set by Lambda itself")
            if isinstance(value, bool):
                value = "true" if value else "false"
            if not isinstance(value, str | int | float):
                raise EnvVarsError(f"env-vars file {path}: {key}.{name} must be a string or a number")
            checked[name] = str(value)
        settings["" if key == "Parameters" else key] = checked
    return settings


def base_environment(endpoint: str, database_url: str) -> dict[str, str]:
    """What every worker gets, as a Lambda execution environment has it."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "PYTHONUNBUFFERED": "1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
            "PYTHONWARNINGS": "ignore:No application metrics to publish",
            "DATABASE_URL": database_url,
        }
    )
    return env


def function_environment(
    spec: FunctionSpec, base: dict[str, str], local: dict[str, str], settings: dict[str, dict[str, str]]
) -> dict[str, str]:
    """One function's environment: base, the template's variables, what the runtime stands in for
    (``local``: its issuer, its database), the settings file, then what Lambda itself sets."""
    return {
        **base,
        **spec.environment,
        **local,
        **settings.get("", {}),
        **settings.get(spec.logical_id, {}),
        "AWS_LAMBDA_FUNCTION_NAME": spec.logical_id,
        "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
        "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
        "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{spec.logical_id}",
        "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]local",
        "_HANDLER": spec.handler,
    }


def senders(functions: dict[str, FunctionSpec], settings: dict[str, dict[str, str]]) -> set[str]:
    """Every SENDER_EMAIL a function will have: the identities the local SES must have verified."""
    found = set()
    for name, spec in functions.items():
        sender = settings.get(name, {}).get("SENDER_EMAIL") or settings.get("", {}).get("SENDER_EMAIL")
        if sender or spec.environment.get("SENDER_EMAIL"):
            found.add(sender or spec.environment["SENDER_EMAIL"])
    return found


def describe(settings: dict[str, dict[str, str]]) -> list[str]:
    """Console lines saying which settings the file applied."""
    return [
        f"{function or 'every function'}: {', '.join(f'{k}={v}' for k, v in sorted(values.items()))}"
        for function, values in sorted(settings.items())
        if values
    ]


def local_unsubscribe_key(data_dir: Path) -> str:
    """The key local unsubscribe links are signed with, made once and kept in the data folder (so
    links in emails of an earlier run keep working), as Secrets Manager keeps it on AWS."""
    path = data_dir / "unsubscribe" / "key"
    try:
        key = path.read_text().strip()
        if len(key) >= 32:
            return key
    except OSError:
        pass
    key = secrets.token_urlsafe(48)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def local_feedback_env(host: str, api_port: int, data_dir: Path) -> dict[str, str]:
    """What the runtime stands in for around feedback and unsubscribe: the API's URL (for the
    links) and the local signing key (UNSUBSCRIBE_KEYS wins over the template's secret ARN)."""
    return {"PUBLIC_API_URL": f"http://{host}:{api_port}", "UNSUBSCRIBE_KEYS": local_unsubscribe_key(data_dir)}
