"""However `make run` ends (terminal closed, Ctrl-C mid-run, killed outright), nothing it started
keeps running, no delivery result is lost, and the next start takes over what a dead one left."""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import signal
import subprocess
import termios
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psutil
import pytest
import requests

from tests.e2e.runtime import ROOT, LocalRuntime
from tests.support import postgres

pytestmark = [pytest.mark.e2e, pytest.mark.slow]
TEMPLATE = ROOT / "template.yaml"
SCHEDULED_EVENT = ROOT / "tests" / "events" / "eventbridge_scheduled.json"
EMAIL_LINE = re.compile(r"\semail\s+(?P<source>\S+) -> (?P<to>\S+): .* \((?P<id>[^)]+)\)$")


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def postmaster_pid(data_dir: Path) -> int:
    return int((data_dir / "pgdata" / "postmaster.pid").read_text().split()[0])


@pytest.fixture(scope="module")
def embedded_data(workdir: Path) -> Path:
    """A data folder of its own: these tests are about the embedded PostgreSQL's life."""
    return workdir / "stopping"


def events_of(runtime: LocalRuntime, token: str) -> requests.Response:
    return requests.get(f"{runtime.api}/events", headers={"Authorization": f"Bearer {token}"}, timeout=30)


def _take_the_terminal() -> None:
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)  # the pty becomes the new session's controlling terminal


def test_closing_the_terminal_stops_everything_including_postgresql(embedded_data: Path) -> None:
    # Given `make run` in a terminal (a pty it has as its controlling terminal), up and ready
    runtime = LocalRuntime(TEMPLATE, embedded_data)
    terminal, its_end = pty.openpty()
    process = subprocess.Popen(
        runtime.command(),
        cwd=ROOT,
        env=runtime.environment(),
        stdin=its_end,
        stdout=its_end,
        stderr=its_end,
        start_new_session=True,
        preexec_fn=_take_the_terminal,
    )
    os.close(its_end)
    screen = b""
    deadline = time.monotonic() + 120
    while b"ready: api " not in screen:
        assert time.monotonic() < deadline and process.poll() is None, screen.decode(errors="replace")[-2000:]
        if select.select([terminal], [], [], 1)[0]:
            screen += os.read(terminal, 65536)
    started = [child.pid for child in psutil.Process(process.pid).children(recursive=True)]
    started.append(postmaster_pid(embedded_data))

    # When the terminal window is closed: the kernel hangs up the session (SIGHUP), writes fail
    os.close(terminal)
    process.wait(timeout=180)

    # Then the workers and PostgreSQL have stopped too
    assert [pid for pid in started if alive(pid)] == []


def test_a_server_left_by_a_killed_runtime_is_taken_over_and_stopped_next_time(embedded_data: Path) -> None:
    # Given a runtime killed outright (SIGKILL: nothing of its own stopping runs), PostgreSQL left running
    first = LocalRuntime(TEMPLATE, embedded_data).start()
    left_running = postmaster_pid(embedded_data)
    assert first.process is not None
    children = [child.pid for child in psutil.Process(first.process.pid).children(recursive=True)]
    first.process.kill()
    first.process.wait()
    assert alive(left_running)
    # Its own children (the AWS endpoint, the workers) notice and stop: none is left holding a port.
    deadline = time.monotonic() + 30
    while [pid for pid in children if alive(pid)] and time.monotonic() < deadline:
        time.sleep(0.2)
    assert [psutil.Process(pid).cmdline() for pid in children if alive(pid)] == []

    # When the next runtime starts on the same data folder
    second = LocalRuntime(TEMPLATE, embedded_data).start()

    # Then it serves, and stopping it stops that PostgreSQL (Ctrl-C works again)
    assert events_of(second, second.mint_token("left@example.com")).status_code == 200
    assert second.stop() == 0
    assert not alive(left_running)


def test_a_postmaster_pid_naming_another_process_is_recovered(embedded_data: Path) -> None:
    # Given a postmaster.pid left behind whose PID now belongs to another process (a reboot later)
    runtime = LocalRuntime(TEMPLATE, embedded_data).start()
    token = runtime.mint_token("reboot@example.com")
    pidfile = embedded_data / "pgdata" / "postmaster.pid"
    lines = pidfile.read_text().splitlines()
    assert runtime.stop() == 0
    stranger = subprocess.Popen(["sleep", "600"])
    try:
        pidfile.write_text("\n".join([str(stranger.pid), *lines[1:]]) + "\n")

        # When the runtime starts
        runtime.start()

        # Then it starts its own PostgreSQL and serves, and leaves the other process alone
        assert events_of(runtime, token).status_code == 200
        assert runtime.stop() == 0
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


@pytest.fixture
def own_database() -> Iterator[str | None]:
    """A database no other runtime of the session works on (their notifiers would send our reminders)."""
    if not os.environ.get("TEST_DATABASE_URL"):
        yield None  # the runtime's own embedded one
        return
    with postgres.test_database() as url:
        yield url


def test_stopping_during_a_notifier_run_records_every_email_that_went_out(
    workdir: Path, own_database: str | None
) -> None:
    # Given a slow notifier (its send rate set through the settings file) and 20 reminders due now
    settings = workdir / "slow-notifier.json"
    sender = "settings-file@example.org"
    notifier = {"MAX_SEND_RATE": "4", "SEND_CONCURRENCY": "2", "SENDER_EMAIL": sender}
    settings.write_text(json.dumps({"NotifierFunction": notifier}))
    runtime = LocalRuntime(TEMPLATE, workdir / "shutdown", own_database, extra_args=["--env-vars", str(settings)])
    runtime.start()
    headers = {"Authorization": f"Bearer {runtime.mint_token('host@example.com')}"}
    recipients = [f"guest{i}@example.com" for i in range(20)]
    starts = (datetime.now(UTC) + timedelta(minutes=3)).isoformat()
    body = {"title": "Shutdown", "starts_at": starts, "recipients": recipients, "reminders": [{"minutes_before": 5}]}
    created = requests.post(f"{runtime.api}/events", json=body, headers=headers, timeout=30)
    assert created.status_code == 201, created.text
    event_id = created.json()["id"]

    # When the notifier runs (through the Invoke API) and Ctrl-C comes while it is sending
    summary: dict[str, Any] = {}
    scheduled = {**json.loads(SCHEDULED_EVENT.read_text()), "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")}

    def run_notifier() -> None:
        reply = runtime.lambda_client().invoke(FunctionName="NotifierFunction", Payload=json.dumps(scheduled))
        summary.update(json.loads(reply["Payload"].read()))

    invocation = threading.Thread(target=run_notifier)
    invocation.start()
    deadline = time.monotonic() + 120
    while len(emails_in(runtime)) < 3:  # three emails out, many more to go
        assert time.monotonic() < deadline and invocation.is_alive(), runtime.lines[-20:]
        time.sleep(0.1)
    runtime.signal(signal.SIGINT)
    assert runtime.wait(timeout=180) == 0
    invocation.join(timeout=60)

    # Then the run finished (its caller got its summary), and every email that went out is recorded as sent
    assert summary.get("sent", 0) >= 1, summary
    emails = emails_in(runtime)
    assert {email["source"] for email in emails.values()} == {sender}
    runtime.start()
    log = requests.get(f"{runtime.api}/events/{event_id}/notifications", headers=headers, timeout=30).json()["items"]
    assert runtime.stop() == 0
    recorded = {row["message_id"]: row for row in log if row["message_id"]}
    assert set(emails) <= set(recorded)
    assert {recorded[message_id]["status"] for message_id in emails} == {"sent"}
    assert [row for row in log if row["status"] == "sending"] == []


def emails_in(runtime: LocalRuntime) -> dict[str, dict[str, str]]:
    """The emails the runtime's AWS endpoint accepted, by message id, as its console shows them."""
    found = (EMAIL_LINE.search(line) for line in list(runtime.lines))
    return {m["id"]: {"source": m["source"], "to": m["to"]} for m in found if m}
