"""`make run`: start the database, the AWS endpoint, the function workers, API Gateway, the
Lambda Invoke API and the schedules from template.yaml; stop them in order on Ctrl-C, SIGTERM
or SIGHUP (a closed terminal).

Stopping: first nothing new is taken (API, Invoke API, schedules), then running invocations
finish (each within its function's timeout; Ctrl-C again stops them at once), then the workers,
the AWS endpoint and the database stop.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import errno
import hashlib
import json
import os
import pickle
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from devserver import console
from devserver.serving import BoundedServer
from devserver.template import App, TemplateError

ROOT = Path(__file__).resolve().parents[3]
# Warm workers get this long to import their handler before "ready" (Lambda allows init 10 s).
INIT_WAIT_SECONDS = 60.0

_OPTIONS = {
    "--api-port": "DEVSERVER_API_PORT",
    "--lambda-port": "DEVSERVER_LAMBDA_PORT",
    "--aws-port": "DEVSERVER_AWS_PORT",
}


class StartupError(Exception):
    """Startup cannot go on; the message is printed as one line."""


class Stopping(Exception):
    """A stop was asked for while starting."""


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m devserver",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "Options also read DEVSERVER_<OPTION> (DEVSERVER_API_PORT=3100 make run), and\n"
            "make run ARGS='--api-port 3100' passes them. DATABASE_URL and AWS_ENDPOINT_URL replace\n"
            "the embedded PostgreSQL and moto.\n\n"
            "Function settings (LEASE_SECONDS, MAX_SEND_RATE, LOG_LEVEL, ...): as on Lambda, the shell's\n"
            "environment does not reach the functions. Put them in a JSON file in SAM's --env-vars shape\n"
            '  {"Parameters": {"LOG_LEVEL": "DEBUG"}, "NotifierFunction": {"LEASE_SECONDS": "300"}}\n'
            "(Parameters: every function; a function's own entries win) and pass --env-vars FILE\n"
            "(or DEVSERVER_ENV_VARS=FILE). Unlike SAM, variables the template does not declare are set\n"
            "too. The file is read at start."
        ),
    )
    parser.add_argument(
        "--template", default=env("DEVSERVER_TEMPLATE", str(ROOT / "template.yaml")), help="SAM template to run"
    )
    parser.add_argument("--host", default=env("DEVSERVER_HOST", "127.0.0.1"), help="address to listen on")
    parser.add_argument("--api-port", type=int, default=env("DEVSERVER_API_PORT", "3000"), help="API Gateway (3000)")
    parser.add_argument(
        "--lambda-port", type=int, default=env("DEVSERVER_LAMBDA_PORT", "3001"), help="Lambda Invoke API (3001)"
    )
    parser.add_argument(
        "--aws-port", type=int, default=env("DEVSERVER_AWS_PORT", "4566"), help="moto, unless AWS_ENDPOINT_URL"
    )
    parser.add_argument(
        "--data-dir",
        default=env("DEVSERVER_DATA_DIR", str(ROOT / ".local")),
        help="embedded PostgreSQL (pgdata/), issuer key (issuer/) and caches, kept between runs",
    )
    parser.add_argument(
        "--env-vars", default=env("DEVSERVER_ENV_VARS"), help="JSON file of function settings (see below)"
    )
    parser.add_argument(
        "--max-workers", type=int, default=env("DEVSERVER_MAX_WORKERS", "4"), help="warm workers per function"
    )
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=env("DEVSERVER_REQUEST_TIMEOUT", "30"),
        help="seconds a request (line, headers, body) has to arrive once it begins (30); then 408",
    )
    parser.add_argument(
        "--migrate-function",
        default=env("DEVSERVER_MIGRATE_FUNCTION", "MigrateFunction"),
        help="function invoked once before ready to migrate the database, when the template has it",
    )
    parser.add_argument(
        "--no-reload",
        action="store_true",
        default=env("DEVSERVER_NO_RELOAD", "") not in ("", "0"),
        help="do not restart workers when sources change",
    )
    parser.add_argument(
        "--no-preload",
        action="store_true",
        default=env("DEVSERVER_NO_PRELOAD", "") not in ("", "0"),
        help="start each worker as a fresh Python process, not forked from one that has imported "
        "the libraries the last run's workers used (slower start)",
    )
    return parser


def _port_message(exc: OSError, host: str, port: int, option: str) -> str:
    variable = _OPTIONS[option]
    how = f"choose another with {variable}=<port> make run (or make run ARGS='{option} <port>')"
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; stop what uses it, or {how}"
    return f"cannot listen on {host}:{port} ({exc.strerror}); {how}"


def _check_port(host: str, port: int, option: str) -> None:
    """Fail before anything starts when a port is taken (the servers bind for real later)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(_port_message(exc, host, port, option)) from None


def load_template(path: Path, overrides: dict[str, str], cache_dir: Path) -> App:
    """template.yaml through aws-sam-translator, or its translation from the last run (~0.8 s
    saved) when neither the template, the translator nor devserver's reader has changed."""
    from importlib.metadata import version

    from devserver import template

    key = hashlib.sha256()
    for part in (str(path), repr(sorted(overrides.items())), version("aws-sam-translator"), sys.version):
        key.update(part.encode() + b"\0")
    for source in (path, Path(template.__file__)):
        with contextlib.suppress(OSError):
            key.update(source.read_bytes())
    cached = cache_dir / f"template-{key.hexdigest()[:24]}.pickle"
    with contextlib.suppress(OSError, pickle.PickleError, EOFError, AttributeError, ImportError):
        # Our own pickle, written by an earlier run into the developer's data folder.
        app = pickle.loads(cached.read_bytes())  # noqa: S301
        if isinstance(app, App):
            return app
    app = template.load(path, overrides)
    with contextlib.suppress(OSError):
        cache_dir.mkdir(parents=True, exist_ok=True)
        for old in cache_dir.glob("template-*.pickle"):
            old.unlink()
        cached.write_bytes(pickle.dumps(app))
    return app


class Runtime:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stopping = threading.Event()
        self.force = threading.Event()  # a second Ctrl-C: stop running invocations now
        self.pools: dict[str, Any] = {}
        self._servers: list[BoundedServer] = []  # serving API Gateway and the Invoke API
        self._takers: list[Callable[[], Any]] = []  # stop taking invocations: schedules, reloads
        self._after_workers: list[Callable[[], Any]] = []  # the AWS endpoint, then the database
        self._preload_file: Path | None = None

    def _check_stopping(self) -> None:
        if self.stopping.is_set():
            raise Stopping

    def start(self) -> None:
        from devserver import aws, environment, gateway, invoke_api, issuer
        from devserver.database import expected_url, open_database
        from devserver.schedules import Scheduler
        from devserver.workers import FunctionPool, SourceWatcher
        from devserver.zygote import Zygote

        args = self.args
        started = time.monotonic()
        data_dir = Path(args.data_dir)
        external_aws = os.environ.get("AWS_ENDPOINT_URL")
        ports = [(args.api_port, "--api-port"), (args.lambda_port, "--lambda-port")]
        if not external_aws:
            ports.append((args.aws_port, "--aws-port"))
        for port, option in ports:
            _check_port(args.host, port, option)
        # In parallel from the start: PostgreSQL, the AWS endpoint (its own process: moto's import is
        # ~0.4 s), the libraries the workers will need (the zygote) and, once their environment is
        # known, the workers' own imports.
        endpoint = external_aws or f"http://{args.host}:{args.aws_port}"
        preload_file = data_dir / "cache" / "preload.json"
        zygote = None
        if not args.no_preload:
            zygote = Zygote(environment.base_environment(endpoint, ""), _read_list(preload_file))
            self._after_workers.insert(0, zygote.stop)
        opening = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="database")
        database_url = os.environ.get("DATABASE_URL")
        database_future = opening.submit(open_database, database_url, data_dir)
        opening.shutdown(wait=False)

        def stop_database() -> None:
            if database_future.exception() is None:
                database_future.result().stop()

        self._after_workers.append(stop_database)
        overrides = {"SenderEmail": os.environ["SENDER_EMAIL"]} if os.environ.get("SENDER_EMAIL") else {}
        app = load_template(Path(args.template).resolve(), overrides, data_dir / "cache")
        if not app.functions:
            raise TemplateError(f"{args.template}: no AWS::Serverless::Function to run")
        settings = environment.read_env_vars(Path(args.env_vars) if args.env_vars else None, app.functions)
        aws_process = None
        if not external_aws:
            senders = environment.senders(app.functions, settings) | set(overrides.values())
            aws_process = aws.AwsProcess(
                args.host,
                args.aws_port,
                sorted(senders) or ["reminders@example.com"],
                feedback=app.feedback,
                lambda_endpoint=f"http://{args.host}:{args.lambda_port}",
            )
            self._after_workers.insert(0, aws_process.stop)
        issuer_url = f"http://{args.host}:{args.api_port}/_local/issuer"
        feedback_env = environment.local_feedback_env(args.host, args.api_port, data_dir)

        def environments(url: str) -> dict[str, dict[str, str]]:
            base = environment.base_environment(endpoint, url)
            local = {"DATABASE_URL": url, **issuer.function_env(issuer_url), **feedback_env}
            return {
                name: environment.function_environment(spec, base, local, settings)
                for name, spec in app.functions.items()
            }

        expected = expected_url(database_url, data_dir)
        if expected is None:  # a first start: the embedded server's socket is known once it runs
            expected = database_future.result().url
        envs = environments(expected)
        for name, spec in app.functions.items():
            self.pools[name] = FunctionPool(spec, envs[name], max_workers=args.max_workers, zygote=zygote)
            self.pools[name].warm()
        for text in environment.describe(settings):
            console.line("settings", text)
        local_issuer = issuer.LocalIssuer(data_dir / "issuer", issuer_url)
        database = database_future.result()
        if database.url != expected:
            console.line("database", f"at {database.url}, not where expected: restarting the workers")
            envs = environments(database.url)
            for name, pool in self.pools.items():
                pool.restart(envs[name])
        self._check_stopping()

        if aws_process is not None:
            failure = aws_process.wait_ready()
            if failure is not None:
                in_use = OSError(errno.EADDRINUSE, failure) if "in use" in failure else None
                raise StartupError(
                    _port_message(in_use, args.host, args.aws_port, "--aws-port")
                    if in_use
                    else f"the AWS endpoint did not start: {failure}"
                )
        else:
            watcher = aws.MailWatcher(endpoint)
            threading.Thread(target=watcher.run, daemon=True).start()
            self._after_workers.insert(0, watcher.stop)
        self._check_stopping()

        if args.migrate_function in self.pools:
            self._migrate(args.migrate_function)
        deadline = time.monotonic() + INIT_WAIT_SECONDS
        for name, pool in self.pools.items():
            if not pool.wait_warm(deadline):
                console.line("init", f"{name} is still importing its handler; its first invocation will wait")
        self._preload_file = preload_file
        self._record_libraries()
        self._check_stopping()

        extra: dict[str, Callable[[], Any]] = {
            "/_local/issuer/.well-known/openid-configuration": local_issuer.openid_configuration,
            "/_local/issuer/.well-known/jwks.json": local_issuer.jwks,
        }
        local_issuer.record_url()
        api = gateway.Gateway(app, self.pools, extra)
        for port, option, handler in (
            (args.api_port, "--api-port", gateway.handler_class(api)),
            (args.lambda_port, "--lambda-port", invoke_api.handler_class(self.pools)),
        ):
            try:
                server = BoundedServer((args.host, port), handler, args.request_timeout)
            except OSError as exc:
                raise StartupError(_port_message(exc, args.host, port, option)) from None
            self._servers.append(server)
            threading.Thread(target=server.serve_forever, daemon=True).start()

        if not args.no_reload:
            source_watcher = SourceWatcher(self.pools)
            threading.Thread(target=source_watcher.run, daemon=True).start()
            self._takers.append(source_watcher.stop)

        def fire(function: str, event: dict[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the runtime is stopping
                gateway.log_invocation(function, "schedule", self.pools[function].invoke(event))

        scheduler = Scheduler(app.schedules, fire)
        threading.Thread(target=scheduler.run, daemon=True).start()
        self._takers.append(scheduler.stop)

        _describe(app)
        console.line(
            "ready",
            f"ready: api http://{args.host}:{args.api_port} (stage /{app.stage}) "
            f"lambda http://{args.host}:{args.lambda_port} aws {endpoint} "
            f"database {database.description} in {time.monotonic() - started:.1f} s",
        )

    def _record_libraries(self) -> None:
        """What the workers imported (at start, and what their invocations added): the next preload."""
        if self._preload_file is not None:
            names = dict.fromkeys(name for pool in self.pools.values() for name in pool.libraries())
            if names:
                _write_list(self._preload_file, list(names))

    def _migrate(self, function: str) -> None:
        from devserver.database import DatabaseError
        from devserver.gateway import log_invocation

        outcome = self.pools[function].invoke({})
        log_invocation(function, "start", outcome)
        if outcome.timed_out:
            raise DatabaseError(f"migrations ({function}) did not finish within {self.pools[function].spec.timeout} s")
        if outcome.error is not None:
            message = str(outcome.error.get("errorMessage", "")).strip().splitlines()
            reason = f"{outcome.error.get('errorType')}: {message[0] if message else ''}"
            raise DatabaseError(f"migrations ({function}) failed: {reason}")

    def stop(self) -> None:
        """Stop taking invocations, let running ones finish, then stop workers, AWS, the database."""
        self.stopping.set()
        for server in self._servers:
            _quietly(server.shutdown)
        for stop_taking in self._takers:
            _quietly(stop_taking)
        running = {name: pool.drain() for name, pool in self.pools.items()}
        busy = [f"{name} x{count}" if count > 1 else name for name, count in running.items() if count]
        if busy:
            until = max(pool.running_until() for pool in self.pools.values()) + 1.0
            console.line(
                "stop",
                f"waiting for running invocations to finish ({', '.join(busy)}; at most "
                f"{max(0.0, until - time.monotonic()):.0f} s); Ctrl-C again to stop them now",
            )
            for pool in self.pools.values():
                while not self.force.is_set() and not pool.wait_drained(min(until, time.monotonic() + 0.2)):
                    if time.monotonic() >= until:
                        break
            if self.force.is_set():
                console.line("stop", "stopping running invocations now")
        for pool in self.pools.values():
            _quietly(pool.close)
        for server in self._servers:  # the answers of the invocations that just finished
            server.wait_answered(5.0)
        _quietly(self._record_libraries)
        for cleanup in self._after_workers:
            _quietly(cleanup)
        for server in self._servers:
            _quietly(server.server_close)
        self._after_workers.clear()
        self._servers.clear()


def _quietly(cleanup: Callable[[], Any]) -> None:
    try:
        cleanup()
    except Exception as exc:
        console.error(f"while stopping: {type(exc).__name__}: {exc}")


def _read_list(path: Path) -> list[str]:
    try:
        names = json.loads(path.read_text())
    except (OSError, ValueError):
        return []
    return [str(name) for name in names] if isinstance(names, list) else []


def _write_list(path: Path, names: list[str]) -> None:
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(names))


def _describe(app: App) -> None:
    for route in app.routes:
        auth = f" (authorizer {route.authorizer.function})" if route.authorizer else ""
        console.line("route", f"{route.method:<6} {route.resource} -> {route.function}{auth}")
    for schedule in app.schedules:
        console.line("schedule", f"{schedule.rule_id}: {schedule.expression} -> {schedule.function}")
    for destination in app.feedback:
        console.line(
            "feedback",
            f"SES {destination.configuration_set} ({', '.join(destination.event_types)}) -> SNS {destination.topic} "
            f"-> {', '.join(destination.functions)} (simulator addresses: success@, bounce@, complaint@"
            f"simulator.amazonses.com)",
        )


def main(argv: list[str] | None = None) -> int:
    import warnings

    from devserver.database import DatabaseError
    from devserver.environment import EnvVarsError
    from devserver.schedules import ScheduleError

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    args = _parser().parse_args(argv)
    runtime = Runtime(args)

    first_signal: list[float] = []

    def request_stop(signum: int, frame: Any) -> None:
        # Only a later Ctrl-C forces: make passes its own SIGTERM on to the runtime, so one stop
        # can arrive as two signals at once.
        if first_signal and signum == signal.SIGINT and time.monotonic() - first_signal[0] > 0.5:
            runtime.force.set()
        first_signal[:] = first_signal or [time.monotonic()]
        runtime.stopping.set()

    # A closed terminal (SIGHUP) and a service manager (SIGTERM) stop it as Ctrl-C does.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, request_stop)
    try:
        runtime.start()
    except Stopping:
        console.line("stop", "stopping before ready: workers, servers, database")
        runtime.stop()
        return 0
    except (StartupError, TemplateError, DatabaseError, ScheduleError, EnvVarsError) as exc:
        console.error(str(exc))
        runtime.stop()
        return 1
    except Exception as exc:
        console.error(f"startup failed: {type(exc).__name__}: {exc}")
        runtime.stop()
        return 1
    runtime.stopping.wait()
    console.line("stop", "stopping: no new requests or schedules; then workers, AWS endpoint, database")
    runtime.stop()
    console.line("stop", "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
