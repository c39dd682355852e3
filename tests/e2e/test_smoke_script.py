"""infra/aws/smoke.py, the post-deploy check, run against `make run`'s runtime: the same API calls
it makes on AWS, with a token from the local issuer instead of a Cognito user, and the notifier
invoked through the Lambda Invoke API instead of waiting for its schedule."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.runtime import ROOT, LocalRuntime
from tests.support.lambdas import load_module

smoke = load_module(ROOT / "infra" / "aws" / "smoke.py")
SCHEDULED = (ROOT / "tests" / "events" / "eventbridge_scheduled.json").read_bytes()

pytestmark = pytest.mark.e2e


def test_the_smoke_script_sees_its_reminder_sent_and_cleans_up(product: LocalRuntime) -> None:
    token = product.mint_token("smoke@example.com")
    notifier = product.lambda_client()

    def run_notifier() -> None:
        notifier.invoke(FunctionName="NotifierFunction", Payload=SCHEDULED)

    notification = smoke.remind_and_wait(product.api, token, timeout=120, lead_seconds=0, poll=run_notifier)
    assert notification["status"] == "sent"
    assert notification["recipient"] == smoke.RECIPIENT
    mail = requests.get(f"{product.aws}/_aws/ses", timeout=10).json()["messages"]
    assert any(smoke.RECIPIENT in m["Destination"]["ToAddresses"] for m in mail)
    # The event it created is gone again.
    events = requests.get(f"{product.api}/events", headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert events.json()["items"] == []


def test_the_smoke_script_fails_in_one_line_on_a_wrong_url(capsys: pytest.CaptureFixture[str]) -> None:
    assert smoke.main(["--url", "https://example.com/prod"]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("smoke: FAILED: ") and "not an API Gateway URL" in out[0]


def test_the_smoke_script_reports_an_api_that_refuses_the_token(product: LocalRuntime) -> None:
    with pytest.raises(smoke.SmokeFailed, match="POST /events answered 401"):
        smoke.remind_and_wait(product.api, "not-a-token", timeout=5)
