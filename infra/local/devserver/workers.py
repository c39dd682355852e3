"""Warm worker processes, one pool per function, each started with the template's environment.

A worker is a plain subprocess running devserver.bootstrap: requests and replies go over a
private pipe pair, so the function's stdout and stderr are its log, shown prefixed.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from devserver import console
from devserver.template import FunctionSpec

LAYER_DIR = Path(__file__).resolve().parents[3] / "layers" / "common"


@dataclass
class Outcome:
    """What an invocation produced: a JSON result, a handler error, or a timeout."""

    request_id: str
    duration_ms: float
    result: str | None = None
    error: dict[str, Any] | None = None
    timed_out: bool = False


class _Worker:
    def __init__(self, spec: FunctionSpec, env: dict[str, str], generation: int) -> None:
        self.spec = spec
        self.generation = generation
        to_child_r, self._to_child_w = os.pipe()
        self._from_child_r, from_child_w = os.pipe()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-u",
                "-m",
                "devserver.bootstrap",
                str(to_child_r),
                str(from_child_w),
                str(spec.code_dir),
                str(LAYER_DIR),
                spec.handler,
            ],
            env=env,
            cwd=spec.code_dir,
            pass_fds=(to_child_r, from_child_w),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # Ctrl-C reaches the runtime, which stops workers in order
        )
        os.close(to_child_r)
        os.close(from_child_w)
        self._writer = os.fdopen(self._to_child_w, "w", encoding="utf-8")
        self._buffer = b""
        self._ready = False
        assert self.process.stdout is not None
        threading.Thread(target=self._pump_logs, args=(self.process.stdout,), daemon=True).start()

    def _pump_logs(self, stream: IO[bytes]) -> None:
        for raw in stream:
            console.line(self.spec.logical_id, raw.decode("utf-8", "replace").rstrip())

    def _read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([self._from_child_r], [], [], remaining)
            if not ready:
                return None
            chunk = os.read(self._from_child_r, 65536)
            if not chunk:
                raise EOFError("worker exited")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def invoke(self, event: Any, request_id: str, timeout: float) -> Outcome:
        start = time.monotonic()
        deadline = start + timeout
        if not self._ready:
            # Init (imports) counts against the timeout in Lambda too, up to 10 s extra.
            if self._read_line(deadline + 10) is None:
                return Outcome(request_id, (time.monotonic() - start) * 1000, timed_out=True)
            self._ready = True
            deadline = time.monotonic() + timeout
        request = {
            "event": event,
            "request_id": request_id,
            "function_arn": self.spec.arn,
            "deadline_ms": time.time() * 1000 + (deadline - time.monotonic()) * 1000,
        }
        self._writer.write(json.dumps(request) + "\n")
        self._writer.flush()
        line = self._read_line(deadline)
        duration = (time.monotonic() - start) * 1000
        if line is None:
            return Outcome(request_id, duration, timed_out=True)
        reply = json.loads(line)
        return Outcome(request_id, duration, result=reply.get("result"), error=reply.get("error"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for closer in (self._writer.close, lambda: os.close(self._from_child_r)):
            with contextlib.suppress(OSError):
                closer()


class FunctionPool:
    """Warm workers of one function; more start when every one is busy, as Lambda scales out."""

    def __init__(self, spec: FunctionSpec, env: dict[str, str], max_workers: int = 4) -> None:
        self.spec = spec
        self._env = env
        self._max = max_workers
        self._idle: list[_Worker] = []
        self._count = 0
        self._generation = 0
        self._cond = threading.Condition()
        self._closed = False

    def warm(self) -> None:
        with self._cond:
            if self._count == 0:
                self._idle.append(self._start())

    def _start(self) -> _Worker:
        self._count += 1
        return _Worker(self.spec, self._env, self._generation)

    def reload(self) -> None:
        """Drop workers that run old code; the next invocation starts a fresh one."""
        with self._cond:
            self._generation += 1
            stale, self._idle = self._idle, []
            self._count -= len(stale)
            self._idle.append(self._start())
        for worker in stale:
            worker.stop()

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("runtime is stopping")
                if self._idle:
                    return self._idle.pop()
                if self._count < self._max:
                    return self._start()
                self._cond.wait()

    def _release(self, worker: _Worker, healthy: bool) -> None:
        keep = healthy and not self._closed and worker.generation == self._generation
        with self._cond:
            if keep:
                self._idle.append(worker)
            else:
                self._count -= 1
            self._cond.notify()
        if not keep:
            worker.stop()

    def invoke(self, event: Any, timeout: float | None = None) -> Outcome:
        """Run one invocation; ``timeout`` (the caller's, e.g. API Gateway's 29 s) may cut the function's."""
        request_id = str(uuid.uuid4())
        worker = self._acquire()
        try:
            outcome = worker.invoke(event, request_id, min(timeout or self.spec.timeout, self.spec.timeout))
        except (EOFError, OSError, ValueError) as exc:
            self._release(worker, healthy=False)
            error = {"errorMessage": f"worker exited: {exc}", "errorType": "Runtime.ExitError", "stackTrace": []}
            return Outcome(request_id, 0.0, error=error)
        # A timed-out worker is killed and replaced, as Lambda recycles the environment.
        self._release(worker, healthy=not outcome.timed_out)
        return outcome

    def close(self) -> None:
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for worker in idle:
            worker.stop()


class SourceWatcher:
    """Reload a function's workers when a file under its CodeUri or the common layer changes."""

    def __init__(self, pools: dict[str, FunctionPool], interval: float = 1.0) -> None:
        self._pools = pools
        self._interval = interval
        self._stop = threading.Event()
        self._seen = {name: self._snapshot(pool.spec.code_dir) for name, pool in pools.items()}
        self._layer = self._snapshot(LAYER_DIR)

    @staticmethod
    def _snapshot(folder: Path) -> dict[str, float]:
        stamps: dict[str, float] = {}
        for root, dirs, files in os.walk(folder):
            dirs[:] = [d for d in dirs if d != "__pycache__" and not d.startswith(".")]
            for name in files:
                if name.endswith((".pyc", ".swp", "~")):
                    continue
                path = os.path.join(root, name)
                with contextlib.suppress(OSError):
                    stamps[path] = os.stat(path).st_mtime
        return stamps

    def run(self) -> None:
        while not self._stop.wait(self._interval):
            layer = self._snapshot(LAYER_DIR)
            layer_changed = layer != self._layer
            self._layer = layer
            for name, pool in self._pools.items():
                seen = self._snapshot(pool.spec.code_dir)
                if layer_changed or seen != self._seen[name]:
                    self._seen[name] = seen
                    console.line("reload", f"{name}: source changed, restarting its workers")
                    pool.reload()

    def stop(self) -> None:
        self._stop.set()
