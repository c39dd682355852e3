"""Template schedules fire by themselves with a genuine EventBridge Scheduled Event."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.e2e.runtime import LocalRuntime

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
SAM_EVENT = json.loads((Path(__file__).resolve().parents[1] / "events" / "eventbridge_scheduled.json").read_text())


@pytest.mark.parametrize("rule", ["TickFunctionEveryMinute", "TickFunctionEveryMinuteByCron"])
def test_a_schedule_fires_on_the_minute_with_a_scheduled_event(probe: LocalRuntime, rule: str) -> None:
    # rate(1 minute) and cron(* * * * ? *) both fire at the next minute boundary: within 70 s
    line = probe.wait_for(rf"TickFunction\s+TICK .*rule/{rule}\"", timeout=75)
    event = json.loads(line.split("TICK ", 1)[1])
    assert set(SAM_EVENT) <= set(event)
    assert event["detail-type"] == "Scheduled Event"
    assert event["source"] == "aws.events"
    assert event["resources"] == [f"arn:aws:events:us-east-1:123456789012:rule/{rule}"]
    assert event["time"].endswith(":00Z")
    assert event["detail"] == {}
