"""The one console: a line per request, invocation, email and schedule fire, as they happen.

Writing never fails the runtime: once the terminal is gone (closed window: SIGHUP, then EIO on
every write), lines are dropped and the runtime goes on stopping in order.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

_lock = threading.Lock()
_gone: set[int] = set()


def _write(stream: TextIO, text: str) -> None:
    if id(stream) in _gone:
        return
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # EIO/EPIPE: the terminal or pipe is gone; ValueError: closed
        _gone.add(id(stream))


def line(kind: str, text: str) -> None:
    now = time.time()
    stamp = f"{time.strftime('%H:%M:%S', time.gmtime(now))}.{int(now % 1 * 1000):03d}"
    with _lock:
        _write(sys.stdout, f"{stamp} {kind:<8} {text}\n")


def error(text: str) -> None:
    with _lock:
        _write(sys.stderr, f"devserver: error: {text}\n")


def raw(text: str) -> None:
    """A line another process of the runtime has already formatted."""
    with _lock:
        _write(sys.stdout, text + "\n")
