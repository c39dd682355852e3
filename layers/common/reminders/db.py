"""Engine and sessions (SQLAlchemy 2 + pg8000), fit for Lambda.

One engine per execution environment, created on first use, with a pool of one pre-pinged
connection (a frozen environment's socket may be dead when it thaws). Sessions are opened and
closed per invocation by :func:`session_scope`, so nothing leaks between invocations.
The URL comes from ``DATABASE_URL`` or from the ``DB_SECRET_ARN`` secret (RDS's JSON shape),
fetched through Powertools Parameters with caching.
"""

from __future__ import annotations

import socket
import ssl
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from pydantic import ValidationError
from sqlalchemy import URL, Engine, create_engine, event, make_url
from sqlalchemy.orm import Session, sessionmaker

from reminders.settings import DatabaseSettings, database_settings

SSLMODES = ("disable", "require", "verify-full")
_lock = threading.Lock()
_engine: Engine | None = None
_sessions: sessionmaker[Session] | None = None


class DatabaseConfigError(ValueError):
    """The configured database location cannot be used (bad URL, unreadable secret)."""


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
    DB_PORT and DB_NAME, when set, win over the secret's fields."""
    host = (settings.db_host if settings else None) or secret.get("host")
    port = (settings.db_port if settings else None) or secret.get("port") or 5432
    name = (settings.db_name if settings else None) or secret.get("dbname") or secret.get("database") or "postgres"
    try:
        if not host:
            raise KeyError("host (set DB_HOST when the secret has none)")
        return URL.create(
            "postgresql+pg8000",
            username=secret["username"],
            password=secret["password"],
            host=host,
            port=int(port),
            database=name,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DatabaseConfigError(f"database secret lacks a usable field: {exc}") from None


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
    # Imported here: only AWS deployments read the secret, and Parameters pulls in boto3.
    from aws_lambda_powertools.utilities import parameters

    try:
        secret = parameters.get_secret(
            settings.db_secret_arn or "", transform="json", max_age=settings.db_secret_max_age
        )
    except parameters.exceptions.TransformParameterError:
        raise DatabaseConfigError("database secret is not JSON") from None
    if not isinstance(secret, dict):
        raise DatabaseConfigError("database secret is not a JSON object")
    # RDS enforces TLS by default (rds.force_ssl), so a secret-described database gets it unless told otherwise.
    return url_from_secret(secret, settings).update_query_dict({"sslmode": settings.db_sslmode or "require"})


def make_engine(
    url: str | URL,
    *,
    pool_size: int = 1,
    socket_timeout: int = 30,
    tls: ssl.SSLContext | None = None,
    root_cert: str | None = None,
    **kwargs: Any,
) -> Engine:
    """An engine for pg8000 with Lambda-friendly pooling. Tests and benches use it directly."""
    if isinstance(url, str):
        url = normalize_url(url)
    sslmode = url.query.get("sslmode")
    if sslmode is not None:
        if sslmode not in SSLMODES:
            raise DatabaseConfigError(f"sslmode must be one of {', '.join(SSLMODES)}, not {sslmode!r}")
        url = url.difference_update_query(["sslmode"])
        tls = tls or ssl_context(str(sslmode), root_cert)
    connect_args: dict[str, Any] = {"timeout": socket_timeout, "application_name": "event-reminders"}
    if tls is not None:
        connect_args["ssl_context"] = tls
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=0,
        pool_pre_ping=True,
        pool_recycle=300,
        connect_args=connect_args,
        **kwargs,
    )
    event.listen(engine, "connect", _no_delay)
    return engine


def _no_delay(dbapi_connection: Any, _record: Any) -> None:
    # pg8000 leaves Nagle on (libpq turns it off): a statement over 8 KB, e.g. a set-based update
    # of 100 rows, otherwise stalls ~40 ms on the delayed ACK.
    sock = getattr(dbapi_connection, "_usock", None)
    if isinstance(sock, socket.socket) and sock.family in (socket.AF_INET, socket.AF_INET6):
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


def get_engine() -> Engine:
    """The execution environment's engine, created on first use."""
    global _engine, _sessions
    if _engine is None:
        with _lock:
            if _engine is None:
                try:
                    settings = database_settings()
                except ValidationError as exc:
                    problems = "; ".join(str(e["msg"]).removeprefix("Value error, ") for e in exc.errors())
                    raise DatabaseConfigError(f"database settings are invalid: {problems}") from None
                _engine = make_engine(
                    resolve_url(settings),
                    pool_size=settings.db_pool_size,
                    socket_timeout=settings.db_socket_timeout,
                    root_cert=settings.db_ssl_root_cert,
                )
                _sessions = sessionmaker(_engine, expire_on_commit=False)
    return _engine


def dispose_engine() -> None:
    """Forget the engine (tests that switch databases; a worker reloading its code)."""
    global _engine, _sessions
    with _lock:
        if _engine is not None:
            _engine.dispose()
        _engine = None
        _sessions = None
        database_settings.cache_clear()


@contextmanager
def session_scope(engine: Engine | None = None) -> Iterator[Session]:
    """A session that commits on success, rolls back on error and always returns its connection."""
    if engine is None:
        get_engine()
        assert _sessions is not None
        session = _sessions()
    else:
        session = Session(engine, expire_on_commit=False)
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
