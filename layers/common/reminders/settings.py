"""Typed settings, read once from the environment (pydantic-settings).

Nothing else in the package reads ``os.environ``: functions build their settings object at
start-up through the cached loaders at the bottom of this module.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class DatabaseSettings(BaseSettings):
    """Where the database is: a URL (local, tests) or a Secrets Manager secret (AWS)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    database_url: str | None = None
    db_secret_arn: str | None = None
    # Seconds a fetched secret is reused before Secrets Manager is asked again.
    db_secret_max_age: int = Field(default=300, ge=0)
    # pg8000 socket timeout (connect and every round trip), seconds: how long a dead server is waited for.
    db_socket_timeout: float = Field(default=30, gt=0, le=900)
    # Server-side limits, seconds (unset: the server's own): one statement, and a transaction left idle
    # (a client that vanished mid-transaction releases its locks after this long).
    db_statement_timeout: float | None = Field(default=None, gt=0, le=3600)
    db_idle_in_transaction_timeout: float | None = Field(default=None, gt=0, le=3600)
    db_pool_size: int = Field(default=1, ge=1, le=50)
    # TLS to PostgreSQL, as libpq's sslmode. Unset: a URL's own ?sslmode= (else none), and
    # "require" for a secret-described database (RDS enforces TLS by default; a laptop does not).
    db_sslmode: Literal["disable", "require", "verify-full"] | None = None
    # CA bundle for verify-full (e.g. RDS's global-bundle.pem); the system's CAs when unset.
    db_ssl_root_cert: str | None = None
    # Override the secret's host/port/dbname: RDS-managed secrets hold only username and password,
    # and with RDS Proxy the host is the proxy's endpoint.
    db_host: str | None = None
    db_port: int | None = Field(default=None, ge=1, le=65535)
    db_name: str | None = None

    @model_validator(mode="after")
    def _one_source(self) -> DatabaseSettings:
        if not self.database_url and not self.db_secret_arn:
            raise ValueError("set DATABASE_URL or DB_SECRET_ARN")
        return self


class UnsubscribeSettings(BaseSettings):
    """Where the unsubscribe keys are (reminders/unsubscribe.py): listed (local, tests), or a secret (AWS)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    # Newest first, comma-separated, each at least 32 bytes: the first signs, all verify.
    unsubscribe_keys: SecretStr | None = None
    # On AWS: a Secrets Manager secret; AWSCURRENT signs, AWSPREVIOUS still verifies (rotation).
    unsubscribe_key_secret_arn: str | None = None
    aws_endpoint_url: str | None = None

    def unsubscribe_key_list(self) -> list[bytes]:
        from reminders.unsubscribe import load_keys

        return load_keys(
            keys=self.unsubscribe_keys.get_secret_value() if self.unsubscribe_keys else None,
            secret_arn=self.unsubscribe_key_secret_arn,
            endpoint_url=self.aws_endpoint_url,
        )


class ApiSettings(DatabaseSettings, UnsubscribeSettings):
    """Settings of ApiFunction.

    API Gateway gives up on an integration after 29 s (the caller then gets its 504, not our 503), so
    every wait on the database ends well before: a statement after DB_STATEMENT_TIMEOUT, a dead
    server after DB_SOCKET_TIMEOUT (connect and each round trip). A request that finds its pooled
    connection dead and the server gone waits at most two socket timeouts (pre-ping, reconnect)
    before its 503; a slow or locked statement at most one statement timeout.
    """

    db_socket_timeout: float = Field(default=8, gt=0, le=25)
    db_statement_timeout: float | None = Field(default=5, gt=0, le=20)
    db_idle_in_transaction_timeout: float | None = Field(default=10, gt=0, le=3600)
    # Calendar feed URLs are an HMAC under this key (at least 32 bytes; kept outside the database,
    # so the database alone reveals no feed). Changing it changes every feed's URL.
    calendar_feed_key: SecretStr | None = None


class NotifierSettings(DatabaseSettings, UnsubscribeSettings):
    """Settings of NotifierFunction: who sends, how fast, how hard it retries."""

    # The API's public base URL (with its stage), for the unsubscribe links in every reminder.
    public_api_url: str | None = None
    # The SES configuration set every send names: it publishes bounces, complaints and deliveries.
    ses_configuration_set: str | None = None

    # Series whose reminders a run plans further ahead (each about once a day): the horizon step's batch.
    horizon_batch_size: int = Field(default=500, ge=1, le=100_000)

    # A dead database is given up on after this long (connect, each round trip): a run must end
    # within its timeout, and storing results is retried a few times.
    db_socket_timeout: float = Field(default=10, gt=0, le=900)
    sender_email: str = "reminders@example.com"
    # Reminders claimed per batch; a run claims batch after batch while its time lasts.
    batch_size: int = Field(default=200, ge=1, le=10_000)
    # The SES account's maximum send rate (14/s in a fresh production account), shared by all runs.
    max_send_rate: float = Field(default=14.0, gt=0)
    send_concurrency: int = Field(default=8, ge=1, le=64)
    # A claimed row whose lease runs out (its run died) is claimed again. Must exceed the function's
    # timeout (a run refuses to start otherwise), so a live run never loses its lease.
    lease_seconds: int = Field(default=120, ge=5)
    max_attempts: int = Field(default=5, ge=1, le=50)
    retry_base_seconds: float = Field(default=30.0, gt=0)
    retry_max_seconds: float = Field(default=3600.0, gt=0)
    # Kept after the last SES call may end, for storing the results before the function's timeout.
    record_reserve_seconds: float = Field(default=5.0, ge=0)
    # Results are committed every this many sends, or this long after the oldest one not yet
    # committed: bounds the duplicate window after a crash.
    record_every: int = Field(default=25, ge=1, le=1_000)
    record_interval_seconds: float = Field(default=0.5, gt=0, le=60)
    # A reminder may still go out this long after the start (a 0-minute reminder is due at the start
    # and the schedule runs once a minute); later it is marked expired.
    start_grace_seconds: int = Field(default=60, ge=0, le=3600)
    # SES endpoint: AWS_ENDPOINT_URL points at moto or LocalStack locally; unset on AWS.
    aws_endpoint_url: str | None = None
    aws_region: str = Field(default="us-east-1", validation_alias=AliasChoices("AWS_REGION", "AWS_DEFAULT_REGION"))
    # SES connect timeout and read timeout, each: one SES call lasts at most twice this.
    ses_timeout_seconds: float = Field(default=5.0, gt=0, le=60)

    @property
    def ses_call_seconds(self) -> float:
        """The longest one SES call can take (connect, then wait for the answer; botocore does not retry)."""
        return 2 * self.ses_timeout_seconds

    @property
    def send_cutoff_seconds(self) -> float:
        """No SES call starts with less than this left before the timeout: one call, then storing its result."""
        return self.ses_call_seconds + self.record_reserve_seconds


@lru_cache(maxsize=1)
def api_settings() -> ApiSettings:
    return ApiSettings()


@lru_cache(maxsize=1)
def notifier_settings() -> NotifierSettings:
    return NotifierSettings()


@lru_cache(maxsize=1)
def database_settings() -> DatabaseSettings:
    return DatabaseSettings()
