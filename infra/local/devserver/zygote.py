"""Function workers forked from one process that has imported their libraries already.

Each worker is a process of its own, as each Lambda execution environment is. Started from
scratch, every one imports the same libraries (SQLAlchemy, pydantic, Powertools, boto3: ~0.7 s of
CPU each), and at start four of them share two cores. The zygote imports once the libraries the
workers of the last run imported (recorded in the data folder), then forks one worker per
request; the worker takes the function's environment, then imports the function's own code,
exactly as before. Libraries are thus imported with the environment all functions share (what a
library reads at import time is the same for every function), and a function whose Python
settings (PYTHON*) differ from it is started from scratch instead.

Hand-written: multiprocessing's forkserver preloads modules too, but it runs its own targets,
not a process with our pipes, session and environment.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import warnings
from pathlib import Path
from typing import IO, Any

# How long a worker may wait for the zygote (which may still be preloading) before starting afresh.
SPAWN_TIMEOUT = 60.0


class ForkedProcess:
    """What the runtime needs of a forked worker (the zygote is its parent): Popen's manners, over a pidfd."""

    def __init__(self, pid: int, stdout: IO[bytes]) -> None:
        self.pid = pid
        self.stdout = stdout
        self.returncode: int | None = None
        try:
            self._pidfd: int | None = os.pidfd_open(pid)
        except ProcessLookupError:
            self._pidfd, self.returncode = None, -1  # gone already

    def poll(self) -> int | None:
        if self.returncode is None and self._pidfd is not None and select.select([self._pidfd], [], [], 0)[0]:
            self._exited()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None and self._pidfd is not None:
            if not select.select([self._pidfd], [], [], timeout)[0]:
                raise subprocess.TimeoutExpired(str(self.pid), timeout or 0)
            self._exited()
        return self.returncode if self.returncode is not None else -1

    def kill(self) -> None:
        if self.returncode is None and self._pidfd is not None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _exited(self) -> None:
        self.returncode = -1  # the zygote reaps it; the status does not matter here
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


class Zygote:
    """The runtime's end: starts ``python -m devserver.zygote`` and asks it for workers."""

    def __init__(self, env: dict[str, str], preload: list[str]) -> None:
        self.env = env
        self._socket, theirs = socket.socketpair()
        self._socket.settimeout(SPAWN_TIMEOUT)
        self._lock = threading.Lock()
        self._broken = False
        self.process = subprocess.Popen(
            [sys.executable, "-u", "-m", "devserver.zygote", str(theirs.fileno())],
            env=env,
            pass_fds=(theirs.fileno(),),
            stdin=subprocess.PIPE,
            start_new_session=True,  # Ctrl-C reaches the runtime, which stops it after the workers
        )
        theirs.close()
        # The preload list goes through stdin (it may fill the pipe: written beside, not waited for).
        threading.Thread(target=self._send_preload, args=(json.dumps(preload).encode(),), daemon=True).start()

    def _send_preload(self, data: bytes) -> None:
        assert self.process.stdin is not None
        with contextlib.suppress(OSError):
            self.process.stdin.write(data)
            self.process.stdin.close()

    def can_fork(self, env: dict[str, str]) -> bool:
        """Whether a worker with ``env`` may be forked (its interpreter settings are the zygote's)."""
        ours = {k: v for k, v in self.env.items() if k.startswith("PYTHON")}
        same = ours == {k: v for k, v in env.items() if k.startswith("PYTHON")}
        return same and not self._broken and self.process.poll() is None

    def spawn(self, argv: list[str], env: dict[str, str], cwd: Path) -> tuple[ForkedProcess, int, int]:
        """A worker running ``devserver.bootstrap`` with ``argv``: its process, request and reply fds."""
        request = json.dumps({"argv": argv, "env": env, "cwd": str(cwd)}).encode() + b"\n"
        with self._lock:
            try:
                self._socket.sendall(request)
                message, fds, _, _ = socket.recv_fds(self._socket, 1024, 3)
            except OSError:
                self._broken = True  # too slow, or gone: a late answer must not be taken for the next
                raise
        if len(fds) != 3:
            self._broken = True
            raise OSError("the zygote did not start the worker")
        to_child, from_child, log = fds
        pid = int(json.loads(message)["pid"])
        return ForkedProcess(pid, os.fdopen(log, "rb")), to_child, from_child

    def stop(self) -> None:
        with contextlib.suppress(OSError):
            self._socket.close()
        if self.process.poll() is None:
            self.process.terminate()  # its workers live in sessions of their own: they stay
            self.process.wait()


def _preload(modules: list[str]) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # import-time warnings are the workers' business
        for name in modules:
            with contextlib.suppress(Exception):
                importlib.import_module(name)


def _fork(sock: socket.socket, request: dict[str, Any]) -> None:
    to_child_r, to_child_w = os.pipe()
    from_child_r, from_child_w = os.pipe()
    log_r, log_w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            os.setsid()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # as in a process started from scratch
            signal.signal(signal.SIGINT, signal.default_int_handler)
            devnull = os.open(os.devnull, os.O_RDONLY)
            os.dup2(devnull, 0)
            os.dup2(log_w, 1)
            os.dup2(log_w, 2)
            for fd in (devnull, log_w, log_r, to_child_w, from_child_r, sock.fileno()):
                os.close(fd)
            os.chdir(request["cwd"])
            os.environ.clear()
            os.environ.update(request["env"])
            from devserver import bootstrap

            bootstrap.main([str(to_child_r), str(from_child_w), *request["argv"]])
            code = 0
        finally:
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)
    for fd in (to_child_r, from_child_w, log_w):
        os.close(fd)
    socket.send_fds(sock, [json.dumps({"pid": pid}).encode()], [to_child_w, from_child_r, log_r])
    for fd in (to_child_w, from_child_r, log_r):
        os.close(fd)


def main() -> None:
    sock = socket.socket(fileno=int(sys.argv[1]))
    try:
        modules = json.loads(sys.stdin.buffer.read() or b"[]")
    except ValueError:
        modules = []
    _preload([str(m) for m in modules] if isinstance(modules, list) else [])
    if threading.active_count() > 1:
        # A library started a thread at import: forking now could copy a held lock. Preload nothing.
        print("zygote: a preloaded library started a thread; workers start without preloading", flush=True)
        os.execv(sys.executable, [sys.executable, "-u", "-m", "devserver.zygote", sys.argv[1]])  # noqa: S606
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the workers
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runtime decides when this stops
    reader = sock.makefile("rb")
    for line in reader:
        _fork(sock, json.loads(line))


if __name__ == "__main__":
    main()
