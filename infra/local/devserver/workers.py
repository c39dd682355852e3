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
from devserver.zygote import ForkedProcess, Zygote

LAYER_DIR = Path(__file__).resolve().parents[3] / "layers" / "common"
# Lambda gives a function's init (imports) up to 10 s beyond its timeout.
INIT_SECONDS = 10.0


@dataclass
class Outcome:
    """What an invocation produced: the handler's JSON result (bytes), a handler error, or a timeout."""

    request_id: str
    duration_ms: float
    result: bytes | None = None
    error: dict[str, Any] | None = None
    timed_out: bool = False

    @property
    def state(self) -> str:
        if self.timed_out:
            return "timed out"
        if self.error is not None:
            return f"error: {self.error.get('errorType')}"
        return "ok"


class _Worker:
    def __init__(self, spec: FunctionSpec, env: dict[str, str], generation: int, zygote: Zygote | None) -> None:
        self.spec = spec
        self.generation = generation
        argv = [str(spec.code_dir), str(LAYER_DIR), spec.handler]
        forked = None
        if zygote is not None and zygote.can_fork(env):
            with contextlib.suppress(OSError, ValueError):  # the zygote is gone: start afresh
                forked = zygote.spawn(argv, env, spec.code_dir)
        self.process: subprocess.Popen[bytes] | ForkedProcess
        if forked is not None:
            self.process, self._to_child, self._from_child = forked
        else:
            to_child_r, self._to_child = os.pipe()
            self._from_child, from_child_w = os.pipe()
            self.process = subprocess.Popen(
                [sys.executable, "-u", "-m", "devserver.bootstrap", str(to_child_r), str(from_child_w), *argv],
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
        self._buffer = b""
        self.ready = False
        self.modules: list[str] = []  # the libraries its handler imported (for the next preload)
        self.deadline = 0.0  # of the invocation it runs, while busy
        assert self.process.stdout is not None
        threading.Thread(target=self._pump_logs, args=(self.process.stdout,), daemon=True).start()

    def _pump_logs(self, stream: IO[bytes]) -> None:
        for raw in stream:
            console.line(self.spec.logical_id, raw.decode("utf-8", "replace").rstrip())

    def _fill(self, deadline: float) -> bool:
        """Read more of the reply; False when the deadline passed first."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        ready, _, _ = select.select([self._from_child], [], [], remaining)
        if not ready:
            return False
        chunk = os.read(self._from_child, 65536)
        if not chunk:
            raise EOFError("worker exited")
        self._buffer += chunk
        return True

    def _read_line(self, deadline: float) -> bytes | None:
        while b"\n" not in self._buffer:
            if not self._fill(deadline):
                return None
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line

    def _read_exactly(self, size: int, deadline: float) -> bytes | None:
        while len(self._buffer) < size:
            if not self._fill(deadline):
                return None
        data, self._buffer = self._buffer[:size], self._buffer[size:]
        return data

    def wait_ready(self, deadline: float) -> bool:
        """Wait for the handler's import (the worker's init) to finish."""
        if not self.ready:
            line = self._read_line(deadline)
            if line is None:
                return False
            self.ready = True
            with contextlib.suppress(ValueError, AttributeError):
                self.modules = list(json.loads(line).get("modules") or [])
        return self.ready

    def invoke(self, event: Any, request_id: str, timeout: float) -> Outcome:
        start = time.monotonic()
        if not self.ready:
            # Init (imports) counts against the timeout in Lambda too, up to 10 s extra.
            self.deadline = start + timeout + INIT_SECONDS
            if not self.wait_ready(self.deadline):
                return Outcome(request_id, (time.monotonic() - start) * 1000, timed_out=True)
        self.deadline = time.monotonic() + timeout
        request = {
            "event": event,
            "request_id": request_id,
            "function_arn": self.spec.arn,
            "deadline_ms": time.time() * 1000 + timeout * 1000,
        }
        data = json.dumps(request).encode() + b"\n"
        view = memoryview(data)
        while view:
            view = view[os.write(self._to_child, view) :]
        header = self._read_line(self.deadline)
        if header is None:
            return Outcome(request_id, (time.monotonic() - start) * 1000, timed_out=True)
        reply = json.loads(header)
        self.modules.extend(reply.get("modules") or [])
        if "result" in reply:
            payload = self._read_exactly(int(reply["result"]), self.deadline)
            if payload is None:
                return Outcome(request_id, (time.monotonic() - start) * 1000, timed_out=True)
            return Outcome(request_id, (time.monotonic() - start) * 1000, result=payload)
        return Outcome(request_id, (time.monotonic() - start) * 1000, error=reply.get("error"))

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)


class FunctionPool:
    """Warm workers of one function; more start when every one is busy, as Lambda scales out."""

    def __init__(
        self, spec: FunctionSpec, env: dict[str, str], max_workers: int = 4, zygote: Zygote | None = None
    ) -> None:
        self.spec = spec
        self._env = env
        self._zygote = zygote
        self._max = max_workers
        self._idle: list[_Worker] = []
        self._busy: set[_Worker] = set()
        self._gone: list[_Worker] = []  # stopped ones (their imports still count for the preload)
        self._generation = 0
        self._starting = 0  # workers being started outside the lock
        self._cond = threading.Condition()
        self._closed = False

    def warm(self) -> None:
        """Start one worker now; it imports the handler while the rest of the runtime starts."""
        with self._cond:
            if self._idle or self._busy or self._starting:
                return
        self._add_idle()

    def wait_warm(self, deadline: float) -> bool:
        """Wait until the warm workers have imported their handler (before "ready" is printed)."""
        with self._cond:
            idle = list(self._idle)
        return all(worker.wait_ready(deadline) for worker in idle)

    def libraries(self) -> list[str]:
        """The libraries this function's workers have imported so far, in order (the next preload)."""
        with self._cond:
            workers = [*self._idle, *self._busy, *self._gone]
        return list(dict.fromkeys(name for worker in workers for name in worker.modules))

    def _start(self) -> _Worker:
        """A new worker, started outside the pool's lock (the zygote may still be preloading)."""
        with self._cond:
            self._starting += 1
            env, generation = self._env, self._generation
        try:
            return _Worker(self.spec, env, generation, self._zygote)
        finally:
            with self._cond:
                self._starting -= 1
                self._cond.notify_all()

    def _add_idle(self) -> None:
        worker = self._start()
        with self._cond:
            keep = not self._closed and worker.generation == self._generation
            if keep:
                self._idle.append(worker)
                self._cond.notify_all()
        if not keep:
            worker.stop()

    def restart(self, env: dict[str, str]) -> None:
        """Start over with another environment (its workers imported with the wrong one)."""
        with self._cond:
            self._env = env
        self.reload()

    def reload(self) -> None:
        """Drop workers that run old code; a fresh one starts importing the new code at once."""
        with self._cond:
            if self._closed:
                return
            self._generation += 1
            stale, self._idle = self._idle, []
        for worker in stale:
            worker.stop()
        self._add_idle()

    def _acquire(self) -> _Worker:
        with self._cond:
            while True:
                if self._closed:
                    raise RuntimeError("runtime is stopping")
                if self._idle:
                    worker = self._idle.pop()
                    self._busy.add(worker)
                    return worker
                if len(self._idle) + len(self._busy) + self._starting < self._max:
                    break
                self._cond.wait()
        worker = self._start()  # scale out, as Lambda does when every environment is busy
        with self._cond:
            if not self._closed:
                self._busy.add(worker)
                return worker
        worker.stop()
        raise RuntimeError("runtime is stopping")

    def _release(self, worker: _Worker, healthy: bool) -> None:
        with self._cond:
            self._busy.discard(worker)
            keep = healthy and not self._closed and worker.generation == self._generation
            if keep:
                self._idle.append(worker)
            else:
                self._gone = [*self._gone[-3:], worker]
            self._cond.notify_all()
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

    def drain(self) -> int:
        """Take no more invocations and stop the idle workers; how many are still running."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._gone.extend(idle)
            running = len(self._busy)
            self._cond.notify_all()
        for worker in idle:
            worker.stop()
        return running

    def running_until(self) -> float:
        """When the last running invocation must end by its own timeout (0 when none runs)."""
        with self._cond:
            return max((worker.deadline for worker in self._busy), default=0.0)

    def wait_drained(self, until: float) -> bool:
        """Wait until no invocation runs (each is bounded by its timeout); False at ``until``."""
        with self._cond:
            while self._busy:
                remaining = until - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.5))
            return True

    def close(self) -> None:
        """Stop every worker, running or not (a running invocation ends as a worker exit)."""
        self.drain()
        with self._cond:
            busy = list(self._busy)
        for worker in busy:
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
