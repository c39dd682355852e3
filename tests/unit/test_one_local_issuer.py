"""`make token` mints for whichever local stack runs: make run, `infra/ci/test-sam.sh --serve` and the
stack deployed into LocalStack all trust the same issuer (one key, .local/issuer, and one issuer URL),
so a token works against each and outlives their restarts."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from devserver.issuer import DEFAULT_ISSUER_URL, DEFAULT_STATE_DIR

ROOT = Path(__file__).resolve().parents[2]


def localstack_parameters() -> dict[str, str]:
    config = tomllib.loads((ROOT / "samconfig.toml").read_text())
    overrides = config["localstack"]["deploy"]["parameters"]["parameter_overrides"]
    return dict(item.split("=", 1) for item in overrides)


def test_the_localstack_deploy_trusts_make_runs_issuer() -> None:
    parameters = localstack_parameters()
    assert parameters["JwtIssuer"] == DEFAULT_ISSUER_URL
    # Fetched from inside LocalStack's function containers: LocalStack's S3, where publish_jwks.py puts it.
    publisher = (ROOT / "infra/localstack/publish_jwks.py").read_text()
    bucket = re.search(r'^BUCKET = "([^"]+)"', publisher, re.MULTILINE)
    key = re.search(r'^KEY = "([^"]+)"', publisher, re.MULTILINE)
    assert bucket and key
    assert parameters["JwksUrl"] == f"http://localstack:4566/{bucket.group(1)}/{key.group(1)}"


def test_sam_local_trusts_make_runs_issuer_on_its_default_port() -> None:
    script = (ROOT / "infra/ci/test-sam.sh").read_text()
    # 3000 unless taken (then a free port, and the script prints the LOCAL_ISSUER_URL to use).
    port = re.search(r'^api_port="\$\{SAM_API_PORT:-\$\(port_or_free (\d+)\)\}"', script, re.MULTILINE)
    url = re.search(r'^issuer="(http://[^"]+)"', script, re.MULTILINE)
    key_dir = re.search(r'^issuer_dir="\$\{DEVSERVER_DATA_DIR:-\$REPO/([^}]+)\}/issuer"', script, re.MULTILINE)
    assert port and url and key_dir, "test-sam.sh no longer names its issuer as this test expects"
    assert url.group(1).replace("$api_port", port.group(1)) == DEFAULT_ISSUER_URL
    assert Path(key_dir.group(1)) / "issuer" == DEFAULT_STATE_DIR
