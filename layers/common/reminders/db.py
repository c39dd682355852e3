"""Engine and sessions (SQLAlchemy 2 + pg8000), fit for Lambda.

One engine per execution environment, created on first use, with a pool of one connection.
Sessions are opened and closed per invocation by :func:`session_scope`, so nothing leaks between
invocations. A pooled connection is checked before each use without a round trip (has the server
closed it?) and pinged only when it sat idle for PING_AFTER_IDLE_SECONDS (a frozen environment's
socket may be silently dead when it thaws); a dead one is replaced before the request uses it.
The URL comes from ``DATABASE_URL`` or from the ``DB_SECRET_ARN`` secret (RDS's JSON shape),
fetched through Powertools Parameters with caching; every new connection takes the secret's
current credentials, and an authentication failure fetches the secret again (rotation).

A connection whose protocol state is unknown is never reused: pg8000 can fail after sending part
of a statement and before reading the replies (a value it cannot convert, say), and a pooled
connection in that state hands the next statement another statement's results. Any error during
a statement that the server did not report itself, and any unexpected exception escaping a
session, discards the connection.
"""

from __future__ import annotations

import select
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

from pydantic import ValidationError
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.engine import ExceptionContext
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from reminders.errors import DomainError
from reminders.settings import DatabaseSettings, api_settings, database_settings, notifier_settings

SSLMODES = ("disable", "require", "verify-full")
# SQLSTATEs after which a retry may succeed: the server is going away, overloaded, or our own
# statement/lock timeout ended a wait (the caller gets a 503, never a 5xx of its own making).
UNAVAILABLE_SQLSTATES = ("08", "53", "57", "55P03", "40001", "40P01", "28")
# Authentication failed (28P01) or was refused (28000): the secret may have been rotated.
AUTH_FAILED_SQLSTATES = ("28P01", "28000")
# A pooled connection unused for this long is pinged before use: a Lambda environment frozen
# between invocations, a NAT or proxy idle timeout, may have dropped it without a word. A busy
# function's connection is used again within milliseconds and skips the round trip.
PING_AFTER_IDLE_SECONDS = 5.0
SettingsLoader = Callable[[], DatabaseSettings]
_lock = threading.Lock()
# One engine per settings loader (a function's own settings: the API's timeouts differ from the notifier's).
_engines: dict[SettingsLoader, tuple[Engine, sessionmaker[Session]]] = {}


class DatabaseConfigError(ValueError):
    """The configured database location cannot be used (bad URL, unreadable secret)."""


def sqlstate(exc: BaseException | None) -> str | None:
    """The SQLSTATE the server reported for ``exc`` (or an exception it wraps), else None."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        original = exc.orig if isinstance(exc, DBAPIError) else exc
        fields = original.args[0] if original is not None and original.args else None
        if isinstance(fields, dict) and isinstance(fields.get("C"), str):
            return fields["C"]
        exc = exc.__cause__ or exc.__context__
    return None


def is_unavailable(exc: BaseException) -> bool:
    """True when ``exc`` (or one it wraps) says the database is down, unreachable or too slow now."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, OperationalError | InterfaceError) or (
            isinstance(current, DBAPIError) and current.connection_invalidated
        ):
            return True
        current = current.__cause__ or current.__context__
    code = sqlstate(exc)
    return code is not None and code.startswith(UNAVAILABLE_SQLSTATES)


def normalize_url(url: str) -> URL:
    """Accept any PostgreSQL URL and return one for pg8000.

    ``postgresql://`` and ``postgres://`` become ``postgresql+pg8000://``; a Unix socket given
    libpq-style (``?host=/dir``, as pgserver prints it) becomes pg8000's ``?unix_sock=``.
    """
    try:
        parsed = make_url(url.replace("postgres://", "postgresql://", 1))
    except Exception as exc:
        raise DatabaseConfigError(f"DATABASE_URL is not a valid URL: {exc}") from None
    if parsed.get_backend_name() != "postgresql":
        raise DatabaseConfigError(f"DATABASE_URL must be a PostgreSQL URL, not {parsed.drivername!r}")
    parsed = parsed.set(drivername="postgresql+pg8000")
    host = parsed.query.get("host")
    if isinstance(host, str) and host.startswith("/"):
        port = parsed.port or 5432
        query = {k: v for k, v in parsed.query.items() if k != "host"}
        query["unix_sock"] = f"{host}/.s.PGSQL.{port}"
        parsed = parsed.set(query=query, port=None)
    return parsed


def url_from_secret(secret: dict[str, Any], settings: DatabaseSettings | None = None) -> URL:
    """Build the URL from a secret in the shape RDS and Secrets Manager rotation use; DB_HOST,
    DB_PORT and DB_NAME, when set, win over the secret's fields. As with libpq, a host that is an
    absolute path is the directory of a Unix socket (a local or embedded server)."""
    host = (settings.db_host if settings else None) or secret.get("host")
    port = (settings.db_port if settings else None) or secret.get("port") or 5432
    name = (settings.db_name if settings else None) or secret.get("dbname") or secret.get("database") or "postgres"
    try:
        if not host or not isinstance(host, str):
            raise KeyError("host (set DB_HOST when the secret has none)")
        credentials = secret_credentials(secret)
        url = URL.create(
            "postgresql+pg8000", username=credentials["username"], password=credentials["password"], database=name
        )
        if host.startswith("/"):
            return url.update_query_dict({"unix_sock": f"{host.rstrip('/')}/.s.PGSQL.{int(port)}"})
        return url.set(host=host, port=int(port))
    except (KeyError, TypeError, ValueError) as exc:
        raise DatabaseConfigError(f"database secret lacks a usable field: {exc}") from None


def secret_credentials(secret: dict[str, Any]) -> dict[str, str]:
    """The secret's username and password (the fields a rotation changes)."""
    username, password = secret["username"], secret["password"]
    if not isinstance(username, str) or not isinstance(password, str):
        raise TypeError("username and password must be strings")
    return {"username": username, "password": password}


@lru_cache(maxsize=1)
def _secrets_provider() -> Any:
    # Imported here: only AWS deployments read the secret, and Parameters pulls in boto3.
    from aws_lambda_powertools.utilities import parameters
    from botocore.config import Config

    # Short timeouts and one retry: the API must answer within API Gateway's 29 s even when
    # Secrets Manager is unreachable (boto3's defaults wait minutes).
    return parameters.SecretsProvider(
        boto_config=Config(connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 2, "mode": "standard"})
    )


def fetch_secret(settings: DatabaseSettings, *, refresh: bool = False) -> dict[str, Any]:
    """The database secret, cached for DB_SECRET_MAX_AGE seconds; ``refresh`` skips the cache."""
    from aws_lambda_powertools.utilities import parameters

    try:
        secret = _secrets_provider().get(
            settings.db_secret_arn or "", transform="json", max_age=settings.db_secret_max_age, force_fetch=refresh
        )
    except parameters.exceptions.TransformParameterError:
        raise DatabaseConfigError("database secret is not JSON") from None
    if not isinstance(secret, dict):
        raise DatabaseConfigError("database secret is not a JSON object")
    return secret


def ssl_context(sslmode: str, root_cert: str | None = None) -> ssl.SSLContext | None:
    """TLS as libpq's sslmode: ``require`` encrypts, ``verify-full`` also checks the certificate."""
    if sslmode == "disable":
        return None
    context = ssl.create_default_context(cafile=root_cert)
    if sslmode == "require":
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def resolve_url(settings: DatabaseSettings) -> URL:
    """The database URL; TLS goes in its ``sslmode`` query parameter, as with libpq."""
    if settings.database_url:
        url = normalize_url(settings.database_url)
        if settings.db_sslmode and "sslmode" not in url.query:
            url = url.update_query_dict({"sslmode": settings.db_sslmode})
        return url
    secret = fetch_secret(settings)
    # RDS enforces TLS by default (rds.force_ssl), so a secret-described database gets it unless told otherwise.
    return url_from_secret(secret, settings).update_query_dict({"sslmode": settings.db_sslmode or "require"})


def make_engine(
    url: str | URL,
    *,
    pool_size: int = 1,
    socket_timeout: float = 30,
    statement_timeout: float | None = None,
    idle_in_transaction_timeout: float | None = None,
    credentials: Callable[[bool], dict[str, str]] | None = None,
    tls: ssl.SSLContext | None = None,
    root_cert: str | None = None,
    ping_after_idle: float = PING_AFTER_IDLE_SECONDS,
    **kwargs: Any,
) -> Engine:
    """An engine for pg8000 with Lambda-friendly pooling. Tests and benches use it directly.

    ``statement_timeout`` and ``idle_in_transaction_timeout`` (seconds) are set server-side for
    every connection. ``credentials(refresh)`` returns the current username and password for each
    new connection; after an authentication failure it is asked once more with ``refresh=True``.
    """
    if isinstance(url, str):
        url = normalize_url(url)
    sslmode = url.query.get("sslmode")
    if sslmode is not None:
        if sslmode not in SSLMODES:
            raise DatabaseConfigError(f"sslmode must be one of {', '.join(SSLMODES)}, not {sslmode!r}")
        url = url.difference_update_query(["sslmode"])
        tls = tls or ssl_context(str(sslmode), root_cert)
    connect_args: dict[str, Any] = {"timeout": socket_timeout, "application_name": "event-reminders"}
    startup: dict[str, str] = {}
    if statement_timeout:
        startup["statement_timeout"] = str(int(statement_timeout * 1000))
    if idle_in_transaction_timeout:
        startup["idle_in_transaction_session_timeout"] = str(int(idle_in_transaction_timeout * 1000))
    if startup:
        connect_args["startup_params"] = startup
    if tls is not None:
        connect_args["ssl_context"] = tls
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_recycle=300,
        connect_args=connect_args,
        **kwargs,
    )
    _cache_placeholder_conversion()
    engine.dialect.connect = _socket_errors_as_dbapi_errors(engine.dialect)  # type: ignore[method-assign]
    event.listen(engine, "connect", _no_delay)
    event.listen(engine, "connect", _mark_used)
    event.listen(engine, "checkin", _mark_used)
    event.listen(engine, "checkout", _check_before_use(engine, ping_after_idle))
    event.listen(engine, "handle_error", _discard_unless_server_reported)
    if credentials is not None:
        event.listen(engine, "do_connect", _connect_with_current_credentials(credentials))
    # pg8000's DB-API commit() and rollback() use the extended protocol: three round trips each,
    # where the simple protocol takes one (same statements, same errors).
    engine.dialect.do_commit = _end_transaction("commit")  # type: ignore[method-assign,assignment]
    engine.dialect.do_rollback = _end_transaction("rollback")  # type: ignore[method-assign,assignment]
    return engine


def _cache_placeholder_conversion() -> None:
    """pg8000 rewrites a statement's ``%s`` placeholders to ``$n`` on every execute, scanning its
    text character by character in Python (~50 us for a short SELECT, over a millisecond for the
    notifier's claim). For the "format" style SQLAlchemy uses, the result depends on the text
    alone, and an engine sends the same few texts again and again: keep it per text."""
    from pg8000 import legacy

    convert = getattr(legacy, "convert_paramstyle", None)
    if convert is None or getattr(convert, "cached_by_reminders", False):
        return

    @lru_cache(maxsize=1024)
    def placeholders_numbered(query: str) -> str:
        return str(convert("format", query, ())[0])

    def convert_paramstyle(style: str, query: str, args: Any) -> tuple[str, Any]:
        if style == "format" and isinstance(args, tuple | list):
            return placeholders_numbered(query), args
        return convert(style, query, args)

    convert_paramstyle.cached_by_reminders = True  # type: ignore[attr-defined]
    legacy.convert_paramstyle = convert_paramstyle


def _end_transaction(statement: str) -> Callable[[Any], None]:
    def end(dbapi_connection: Any) -> None:
        if dbapi_connection._in_transaction:
            dbapi_connection.execute_simple(statement)

    return end


def _mark_used(_dbapi_connection: Any, record: Any) -> None:
    record.info["last_used"] = (time.monotonic(), time.time())


def _check_before_use(engine: Engine, ping_after_idle: float) -> Callable[..., None]:
    """A pool ``checkout`` listener: a connection the server has closed (its socket is readable
    while no reply is due: the server's farewell or EOF) is replaced at no cost; one idle for
    ``ping_after_idle`` seconds is pinged first. Raising DisconnectionError makes the pool discard
    it and connect anew."""

    def checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if _closed_by_server(dbapi_connection):
            raise DisconnectionError("the server closed the pooled connection")
        monotonic, wall = record.info.get("last_used", (0.0, 0.0))
        # Both clocks: a frozen or restored environment's monotonic clock may not have moved.
        idle = max(time.monotonic() - monotonic, time.time() - wall)
        if idle < ping_after_idle:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except (engine.dialect.loaded_dbapi.Error, OSError) as exc:
            raise DisconnectionError(f"the pooled connection did not answer a ping: {exc}") from exc

    return checkout


def _closed_by_server(dbapi_connection: Any) -> bool:
    sock = getattr(dbapi_connection, "_usock", None)
    if not isinstance(sock, socket.socket):
        return False  # not pg8000's socket as we know it: the idle ping still applies
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return True
    try:
        readable, _, _ = select.select([sock], [], [], 0)
    except (OSError, ValueError):  # already closed
        return True
    return bool(readable)


def _socket_errors_as_dbapi_errors(dialect: Any) -> Callable[..., Any]:
    """The dialect's connect, with the socket errors pg8000 lets through as its InterfaceError.

    pg8000 wraps a refused connection, but not a reset or timeout after the TCP handshake (its SSL
    request is the first thing it sends: a server shutting down resets it). SQLAlchemy wraps only the
    DB-API's errors, so such an OSError reached callers raw: the API answered 500 instead of 503 and
    the notifier's ``except DBAPIError`` missed it. As an InterfaceError it is an unavailable database.
    """
    connect = dialect.connect
    interface_error = dialect.loaded_dbapi.InterfaceError

    def connect_or_interface_error(*cargs: Any, **cparams: Any) -> Any:
        try:
            return connect(*cargs, **cparams)
        except OSError as exc:
            raise interface_error(f"network error while connecting: {type(exc).__name__}: {exc}") from exc

    return connect_or_interface_error


def _no_delay(dbapi_connection: Any, _record: Any) -> None:
    # pg8000 leaves Nagle on (libpq turns it off): a statement over 8 KB, e.g. a set-based update
    # of 100 rows, otherwise stalls ~40 ms on the delayed ACK.
    sock = getattr(dbapi_connection, "_usock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def _discard_unless_server_reported(context: ExceptionContext) -> OperationalError | None:
    """Invalidate the connection after any error during a statement that the server did not report.

    A server error (it has a SQLSTATE) arrives in step: pg8000 reads up to ReadyForQuery before
    raising it. Anything else (OverflowError converting a parameter, a broken socket, a bug) may
    leave replies unread, so that connection must never run another statement.

    pg8000 lets the socket's own errors through (a read timeout is a bare TimeoutError): those
    become SQLAlchemy's OperationalError, which callers already read as "the database is unavailable".
    """
    original = context.original_exception
    if sqlstate(original) is None:
        context.is_disconnect = True
        # Only this connection: the others in the pool are in a known state.
        context.invalidate_pool_on_disconnect = False
    if isinstance(original, OSError) and context.sqlalchemy_exception is None:
        return OperationalError(context.statement, context.parameters, original, connection_invalidated=True)
    return None


def _connect_with_current_credentials(credentials: Callable[[bool], dict[str, str]]) -> Callable[..., Any]:
    def do_connect(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        cparams.update(_pg8000_credentials(credentials(False)))
        try:
            return dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.DatabaseError as exc:
            if sqlstate(exc) not in AUTH_FAILED_SQLSTATES:
                raise
        # The password was rotated since the secret was cached: read it again, try once more.
        cparams.update(_pg8000_credentials(credentials(True)))
        return dialect.connect(*cargs, **cparams)

    return do_connect


def _pg8000_credentials(credentials: dict[str, str]) -> dict[str, str]:
    return {"user": credentials["username"], "password": credentials["password"]}


def _settings(loader: SettingsLoader) -> DatabaseSettings:
    try:
        return loader()
    except ValidationError as exc:
        problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
        raise DatabaseConfigError(f"database settings are invalid: {problems}") from None


def engine_for(settings: DatabaseSettings) -> Engine:
    """A new engine as ``settings`` describe it (URL or secret, pool, timeouts, TLS)."""
    credentials = None
    if not settings.database_url:

        def credentials(refresh: bool) -> dict[str, str]:
            try:
                return secret_credentials(fetch_secret(settings, refresh=refresh))
            except (KeyError, TypeError) as exc:
                raise DatabaseConfigError(f"database secret lacks a usable field: {exc}") from None

    return make_engine(
        resolve_url(settings),
        pool_size=settings.db_pool_size,
        socket_timeout=settings.db_socket_timeout,
        statement_timeout=settings.db_statement_timeout,
        idle_in_transaction_timeout=settings.db_idle_in_transaction_timeout,
        credentials=credentials,
        root_cert=settings.db_ssl_root_cert,
    )


def _engine_and_sessions(loader: SettingsLoader) -> tuple[Engine, sessionmaker[Session]]:
    found = _engines.get(loader)
    if found is None:
        with _lock:
            found = _engines.get(loader)
            if found is None:
                engine = engine_for(_settings(loader))
                found = _engines[loader] = (engine, sessionmaker(engine, expire_on_commit=False))
    return found


def get_engine(settings: SettingsLoader = database_settings) -> Engine:
    """The execution environment's engine for these settings, created on first use."""
    return _engine_and_sessions(settings)[0]


def dispose_engine() -> None:
    """Forget the engines and settings (tests that switch databases; a worker reloading its code)."""
    with _lock:
        for engine, _ in _engines.values():
            engine.dispose()
        _engines.clear()
        for loader in (database_settings, api_settings, notifier_settings):
            loader.cache_clear()
        _secrets_provider.cache_clear()


@contextmanager
def session_scope(engine: Engine | None = None, *, settings: SettingsLoader = database_settings) -> Iterator[Session]:
    """A session that commits on success, rolls back on error and always returns its connection.

    A domain error (raised on purpose, between statements) rolls back and keeps the connection;
    any other exception discards it: its protocol state is unknown.
    """
    session = _engine_and_sessions(settings)[1]() if engine is None else Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except DomainError:
        session.rollback()
        raise
    except BaseException:
        session.invalidate()
        raise
    finally:
        session.close()
