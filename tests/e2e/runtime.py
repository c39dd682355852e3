"""Start the local runtime (`python -m devserver`) as a subprocess on free ports and watch its console."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LocalRuntime:
    template: Path
    data_dir: Path
    database_url: str | None = None
    api_port: int = field(default_factory=free_port)
    lambda_port: int = field(default_factory=free_port)
    aws_port: int = field(default_factory=free_port)
    # More command-line options (e.g. ["--env-vars", path, "--request-timeout", "2"]).
    extra_args: list[str] = field(default_factory=list)
    # Console to this file instead of a pipe read line by line here (benchmarks: no reader thread
    # competing with the client); lines are then read from it when looked for (refresh()).
    console_file: Path | None = None
    lines: list[str] = field(default_factory=list)
    process: subprocess.Popen[str] | None = None
    _new_line: threading.Condition = field(default_factory=threading.Condition, repr=False)

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def lambda_endpoint(self) -> str:
        return f"http://127.0.0.1:{self.lambda_port}"

    @property
    def aws(self) -> str:
        return f"http://127.0.0.1:{self.aws_port}"

    @property
    def pgdata(self) -> Path:
        """The embedded PostgreSQL's folder (when no DATABASE_URL is given)."""
        return self.data_dir / "pgdata"

    def lambda_client(self) -> Any:
        """boto3's Lambda client on the runtime's Invoke API, as any client would use it."""
        import boto3  # here: a benchmark's process stays as lean as the workers it is compared with
        from botocore.config import Config

        return boto3.client(
            "lambda",
            endpoint_url=self.lambda_endpoint,
            region_name="us-east-1",
            aws_access_key_id="test",
            aws_secret_access_key="test",
            config=Config(retries={"max_attempts": 0}, read_timeout=90),
        )

    def command(self) -> list[str]:
        return [
            sys.executable,
            "-m",
            "devserver",
            "--template",
            str(self.template),
            "--data-dir",
            str(self.data_dir),
            "--api-port",
            str(self.api_port),
            "--lambda-port",
            str(self.lambda_port),
            "--aws-port",
            str(self.aws_port),
            *self.extra_args,
        ]

    def environment(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "DATABASE_URL", "DEVSERVER_"))}
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        return env

    def start(self, timeout: float = 90) -> LocalRuntime:
        self.lines.clear()
        console = open(self.console_file, "w") if self.console_file else subprocess.PIPE  # noqa: SIM115
        self.process = subprocess.Popen(
            self.command(),
            cwd=ROOT,
            env=self.environment(),
            stdout=console,
            stderr=subprocess.STDOUT,
            text=True,
            # Its own process group, as a terminal gives `make run`: signals reach only what the test sends.
            start_new_session=True,
        )
        if self.console_file is None:
            threading.Thread(target=self._collect, args=(self.process,), daemon=True).start()
        else:
            self._read = 0
        self.wait_for(r"ready: api ", timeout)
        return self

    def refresh(self) -> None:
        """Read what the runtime wrote to its console file since last time (console_file mode)."""
        if self.console_file is None:
            return
        with open(self.console_file) as console:
            console.seek(self._read)
            text = console.read()
        complete = text[: text.rfind("\n") + 1]
        self._read += len(complete.encode())
        with self._new_line:
            self.lines.extend(complete.splitlines())

    def _collect(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._new_line:
                self.lines.append(line.rstrip("\n"))
                self._new_line.notify_all()
        with self._new_line:
            self._new_line.notify_all()

    def wait_for(self, pattern: str, timeout: float) -> str:
        """The first console line matching ``pattern``, waiting up to ``timeout`` seconds."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        seen = 0
        exited = False
        while True:
            self.refresh()
            with self._new_line:
                for line in self.lines[seen:]:
                    if regex.search(line):
                        return line
                seen = len(self.lines)
                if exited:
                    raise RuntimeError(f"runtime exited ({self.returncode}):\n" + "\n".join(self.lines[-30:]))
                if self.process is not None and self.process.poll() is not None:
                    exited = True
                    self._new_line.wait(0.2)  # let the reader drain the last lines
                    continue
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"no line matching {pattern!r} in {timeout} s:\n" + "\n".join(self.lines[-30:]))
                self._new_line.wait(min(remaining, 0.5 if self.console_file is None else 0.02))

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.returncode

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def wait(self, timeout: float = 120) -> int:
        """Wait for the runtime to exit by itself (after a signal); its exit status."""
        assert self.process is not None
        return self.process.wait(timeout)

    def stop(self) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(120)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def mint_token(self, email: str) -> str:
        """A bearer token from the runtime's local issuer, the way `make token` gets one."""
        result = subprocess.run(
            [
                sys.executable,
                "-m",
                "devserver.issuer",
                "token",
                "--email",
                email,
                "--state-dir",
                str(self.data_dir / "issuer"),
                "--issuer-url",
                f"{self.api}/_local/issuer",
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        return result.stdout.strip()
