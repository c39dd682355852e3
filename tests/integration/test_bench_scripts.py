"""`make bench` runs the product's code: a bench whose stand-in drifts from the interface the code
calls measures nothing (the notifier bench's stand-in SES once lacked send_raw_email after the
switch to raw MIME, and every reminder was retried for minutes). Small runs, no timing asserted."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.support.lambdas import ROOT


def test_the_notifier_bench_sends_every_reminder_through_the_real_mailer(database_url: str) -> None:
    result = subprocess.run(
        [sys.executable, "bench/notifier_bench.py", "--sections", "throughput", "--count", "300"],
        cwd=ROOT,
        env={**os.environ, "TEST_DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "300 sent" in result.stdout, result.stdout
