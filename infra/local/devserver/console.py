"""The one console: a line per request, invocation, email and schedule fire, as they happen."""

from __future__ import annotations

import sys
import threading
from datetime import UTC, datetime

_lock = threading.Lock()


def line(kind: str, text: str) -> None:
    stamp = datetime.now(UTC).strftime("%H:%M:%S.%f")[:-3]
    with _lock:
        sys.stdout.write(f"{stamp} {kind:<8} {text}\n")
        sys.stdout.flush()


def error(text: str) -> None:
    with _lock:
        sys.stderr.write(f"devserver: error: {text}\n")
        sys.stderr.flush()
