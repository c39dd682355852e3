"""`make run`: start the database, the AWS endpoint, the function workers, API Gateway, the
Lambda Invoke API and the schedules; stop all of them on Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import concurrent.futures
import contextlib
import errno
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from devserver import console
from devserver.template import REGION, App, TemplateError

ROOT = Path(__file__).resolve().parents[3]


class StartupError(Exception):
    """Startup cannot go on; the message is printed as one line."""


def _parser() -> argparse.ArgumentParser:
    env = os.environ.get
    parser = argparse.ArgumentParser(
        prog="python -m devserver",
        description=__doc__,
        epilog="Each option also reads DEVSERVER_<OPTION> (e.g. DEVSERVER_API_PORT); "
        "DATABASE_URL and AWS_ENDPOINT_URL replace the embedded PostgreSQL and moto.",
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
        help="embedded PostgreSQL (pgdata/) and issuer key (issuer/), kept between runs",
    )
    parser.add_argument(
        "--max-workers", type=int, default=env("DEVSERVER_MAX_WORKERS", "4"), help="warm workers per function"
    )
    parser.add_argument("--no-reload", action="store_true", help="do not restart workers when sources change")
    return parser


def _bind(host: str, port: int, handler: type[BaseHTTPRequestHandler], flag: str) -> ThreadingHTTPServer:
    try:
        server = ThreadingHTTPServer((host, port), handler)
    except OSError as exc:
        raise StartupError(_port_message(exc, host, port, flag)) from None
    server.daemon_threads = True
    return server


def _check_port(host: str, port: int, flag: str) -> None:
    """Fail before anything starts when a port is taken (the servers bind for real later)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise StartupError(_port_message(exc, host, port, flag)) from None


def _port_message(exc: OSError, host: str, port: int, flag: str) -> str:
    if exc.errno == errno.EADDRINUSE:
        return f"port {port} on {host} is already in use; stop what uses it or choose another with {flag}"
    return f"cannot listen on {host}:{port} ({exc.strerror}); choose another with {flag}"


class Runtime:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.stopping = threading.Event()
        self._cleanups: list[Callable[[], Any]] = []

    def on_stop(self, cleanup: Callable[[], Any]) -> None:
        self._cleanups.append(cleanup)

    def stop(self) -> None:
        self.stopping.set()
        for cleanup in reversed(self._cleanups):
            try:
                cleanup()
            except Exception as exc:
                console.error(f"while stopping: {type(exc).__name__}: {exc}")
        self._cleanups.clear()

    def start(self) -> None:
        from devserver import aws, gateway, invoke_api, template
        from devserver.database import open_database
        from devserver.schedules import Scheduler
        from devserver.workers import FunctionPool, SourceWatcher

        args = self.args
        started = time.monotonic()
        ports = [(args.api_port, "--api-port"), (args.lambda_port, "--lambda-port")]
        if not os.environ.get("AWS_ENDPOINT_URL"):
            ports.append((args.aws_port, "--aws-port"))
        for port, flag in ports:
            _check_port(args.host, port, flag)
        # PostgreSQL starts (and migrates) while the template is translated and moto comes up.
        opening = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="database")
        database_future = opening.submit(open_database, os.environ.get("DATABASE_URL"), Path(args.data_dir))
        opening.shutdown(wait=False)

        def stop_database() -> None:
            if database_future.exception() is None:
                database_future.result().stop()

        self.on_stop(stop_database)
        overrides = {"SenderEmail": os.environ["SENDER_EMAIL"]} if os.environ.get("SENDER_EMAIL") else {}
        app = template.load(Path(args.template).resolve(), overrides)
        if not app.functions:
            raise TemplateError(f"{args.template}: no AWS::Serverless::Function to run")

        pools: dict[str, FunctionPool] = {}
        issuer = _issuer(Path(args.data_dir), f"http://{args.host}:{args.api_port}/_local/issuer")
        extra: dict[str, Callable[[], Any]] = {}
        if issuer is not None:
            extra["/_local/issuer/.well-known/openid-configuration"] = issuer.openid_configuration
            extra["/_local/issuer/.well-known/jwks.json"] = issuer.jwks
        api = gateway.Gateway(app, pools, extra)
        api_server = _bind(args.host, args.api_port, gateway.handler_class(api), "--api-port")
        self.on_stop(api_server.server_close)
        lambda_server = _bind(args.host, args.lambda_port, invoke_api.handler_class(pools), "--lambda-port")
        self.on_stop(lambda_server.server_close)

        endpoint = os.environ.get("AWS_ENDPOINT_URL")
        aws_server = None
        if not endpoint:
            from moto.moto_server.werkzeug_app import MotoRequestHandler
            from werkzeug.serving import make_server

            class QuietMotoHandler(MotoRequestHandler):
                def log_request(self, *args: Any, **kwargs: Any) -> None:
                    pass  # the console shows emails, not every AWS call

            try:
                aws_server = make_server(
                    args.host,
                    args.aws_port,
                    aws.moto_wsgi_app(aws.SesMailbox()),
                    threaded=True,
                    request_handler=QuietMotoHandler,
                )
            except (OSError, SystemExit) as exc:
                error = exc if isinstance(exc, OSError) else OSError(errno.EADDRINUSE, "in use")
                raise StartupError(_port_message(error, args.host, args.aws_port, "--aws-port")) from None
            self.on_stop(aws_server.server_close)
            endpoint = f"http://{args.host}:{args.aws_port}"

        if aws_server is not None:
            self._serve(aws_server)
            sender = overrides.get("SenderEmail") or _sender(app)
            aws.verify_sender(endpoint, sender)
        else:
            watcher = aws.MailWatcher(endpoint)
            threading.Thread(target=watcher.run, daemon=True).start()
            self.on_stop(watcher.stop)
        database = database_future.result()

        base_env = _base_env(endpoint, database.url_text)
        # The local issuer stands in for Cognito: its settings replace the template's.
        issuer_env = issuer.function_env() if issuer is not None else {}
        for name, spec in app.functions.items():
            env = {
                **base_env,
                **spec.environment,
                **issuer_env,
                "DATABASE_URL": database.url_text,
                "AWS_LAMBDA_FUNCTION_NAME": name,
                "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
                "AWS_LAMBDA_FUNCTION_TIMEOUT": str(spec.timeout),
                "AWS_LAMBDA_LOG_GROUP_NAME": f"/aws/lambda/{name}",
                "AWS_LAMBDA_LOG_STREAM_NAME": f"{time.strftime('%Y/%m/%d')}/[$LATEST]local",
                "_HANDLER": spec.handler,
            }
            pools[name] = FunctionPool(spec, env, max_workers=args.max_workers)

        def close_pools() -> None:
            for pool in pools.values():
                pool.close()

        self.on_stop(close_pools)
        for pool in pools.values():
            pool.warm()

        if not args.no_reload:
            source_watcher = SourceWatcher(pools)
            threading.Thread(target=source_watcher.run, daemon=True).start()
            self.on_stop(source_watcher.stop)

        def fire(function: str, event: dict[str, Any]) -> None:
            with contextlib.suppress(RuntimeError):  # the runtime is stopping
                gateway.log_invocation(function, "schedule", pools[function].invoke(event))

        scheduler = Scheduler(app.schedules, fire)
        threading.Thread(target=scheduler.run, daemon=True).start()
        self.on_stop(scheduler.stop)

        self._serve(api_server)
        self._serve(lambda_server)
        _describe(app)
        console.line(
            "ready",
            f"ready: api http://{args.host}:{args.api_port} (stage /{app.stage}) "
            f"lambda http://{args.host}:{args.lambda_port} aws {endpoint} "
            f"database {database.description} in {time.monotonic() - started:.1f} s",
        )

    def _serve(self, server: Any) -> None:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        self.on_stop(server.shutdown)


def _issuer(data_dir: Path, issuer_url: str) -> Any | None:
    try:
        from devserver.issuer import LocalIssuer  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    return LocalIssuer(data_dir / "issuer", issuer_url)


def _sender(app: App) -> str:
    for spec in app.functions.values():
        if spec.environment.get("SENDER_EMAIL"):
            return spec.environment["SENDER_EMAIL"]
    return "reminders@example.com"


def _base_env(endpoint: str, database_url: str) -> dict[str, str]:
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "SYSTEMROOT", "TMPDIR")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        {
            "PYTHONPATH": str(Path(__file__).resolve().parents[1]),
            "PYTHONUNBUFFERED": "1",
            "AWS_ENDPOINT_URL": endpoint,
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_LAMBDA_FUNCTION_VERSION": "$LATEST",
            "AWS_EXECUTION_ENV": "AWS_Lambda_python3.13",
            "POWERTOOLS_TRACE_DISABLED": "true",  # no X-Ray daemon locally
            "PYTHONWARNINGS": "ignore:No application metrics to publish",
            "DATABASE_URL": database_url,
        }
    )
    return env


def _describe(app: App) -> None:
    for route in app.routes:
        auth = f" (authorizer {route.authorizer.function})" if route.authorizer else ""
        console.line("route", f"{route.method:<6} {route.resource} -> {route.function}{auth}")
    for schedule in app.schedules:
        console.line("schedule", f"{schedule.rule_id}: {schedule.expression} -> {schedule.function}")


def main(argv: list[str] | None = None) -> int:
    import warnings

    from devserver.database import DatabaseError
    from devserver.schedules import ScheduleError

    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    args = _parser().parse_args(argv)
    runtime = Runtime(args)

    def request_stop(signum: int, frame: Any) -> None:
        runtime.stopping.set()

    signal.signal(signal.SIGINT, request_stop)
    signal.signal(signal.SIGTERM, request_stop)
    try:
        runtime.start()
    except (StartupError, TemplateError, DatabaseError, ScheduleError) as exc:
        console.error(str(exc))
        runtime.stop()
        return 1
    except Exception as exc:
        console.error(f"startup failed: {type(exc).__name__}: {exc}")
        runtime.stop()
        return 1
    runtime.stopping.wait()
    console.line("stop", "stopping: workers, servers, database")
    runtime.stop()
    console.line("stop", "stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
