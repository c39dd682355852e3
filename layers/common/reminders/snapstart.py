"""Lambda SnapStart: what must not outlive the snapshot it was taken in.

With SnapStart Lambda runs a function's init once per published version, snapshots the
environment, and starts every later environment from that snapshot. Anything init (or the
snapshot's last invocations) left behind is then shared by every environment and may be stale:
sockets, fetched keys and secrets, the random module's state. The hooks registered here run
through ``snapshot_restore_py``, which Lambda's Python runtimes (3.12+) provide; elsewhere (the
local runtime, tests) there is no snapshot and :func:`register` does nothing.
"""

from __future__ import annotations

import importlib
import random
from collections.abc import Callable, Iterable

Hook = Callable[[], None]


def reseed_random() -> None:
    """Every environment restored from one snapshot would otherwise draw the same numbers
    (retry jitter, anything seeded from ``random``); ``uuid4`` and ``secrets`` read the OS's
    generator, which Lambda reseeds on restore."""
    random.seed()


def preload(modules: Iterable[str]) -> None:
    """Import modules that some requests need and init does not load, so the snapshot has them."""
    for name in modules:
        importlib.import_module(name)


def register(*, after_restore: Iterable[Hook], before_snapshot: Iterable[Hook] = ()) -> bool:
    """Run ``before_snapshot`` before Lambda takes the snapshot and ``after_restore`` (after
    reseeding ``random``) whenever an environment resumes from it. False when there is no
    SnapStart runtime to register with."""
    try:
        from snapshot_restore_py import register_after_restore, register_before_snapshot
    except ImportError:
        return False
    for hook in before_snapshot:
        register_before_snapshot(hook)
    register_after_restore(reseed_random)
    for hook in after_restore:
        register_after_restore(hook)
    return True
