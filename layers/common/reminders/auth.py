"""Bearer-token verification for the API's Lambda TOKEN authorizer.

Tokens are JWTs from an OIDC issuer (Cognito on AWS, the local runtime's issuer on a laptop),
checked against the issuer's JWKS: RS256 signature, issuer, audience (``aud`` on ID tokens,
``client_id`` on Cognito access tokens), expiry and not-before. The JWKS is fetched once per
execution environment, again when it is stale or a token names a key we have not seen (key
rotation), at most once per ``JWKS_REFRESH_INTERVAL_SECONDS``; a failed fetch keeps the old keys.
Hand-written glue over joserfc: Powertools has no JWT verification and this is a few lines.
"""

from __future__ import annotations

import json
import threading
import time
import urllib.request
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from joserfc import jwt
from joserfc.errors import ExpiredTokenError, InvalidKeyIdError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

ALGORITHMS = ["RS256"]
MAX_TOKEN_LENGTH = 8192


class AuthSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    jwt_issuer: str = ""
    jwt_audience: str = "event-reminders"
    # An SSM parameter naming more audiences (comma-separated): the dashboard's Cognito app client,
    # whose id the template cannot pass here directly (its callback URL names the API, and the API
    # names this authorizer). Read only for a token the first audience does not match.
    jwt_extra_audiences_parameter: str = ""
    jwt_extra_audiences_max_age_seconds: int = Field(default=300, ge=0)
    # Defaults to the OIDC convention: {issuer}/.well-known/jwks.json (Cognito's path too).
    jwks_url: str = ""
    jwks_max_age_seconds: int = Field(default=3600, ge=0)
    # The least time between two fetches of the JWKS when a token names an unknown key or a
    # fetch failed (the keys we have keep serving meanwhile).
    jwks_refresh_interval_seconds: int = Field(default=60, ge=0, le=3600)
    clock_skew_seconds: int = Field(default=30, ge=0, le=300)

    @property
    def resolved_jwks_url(self) -> str:
        return self.jwks_url or f"{self.jwt_issuer.rstrip('/')}/.well-known/jwks.json"


@lru_cache(maxsize=1)
def auth_settings() -> AuthSettings:
    return AuthSettings()


class Unauthorized(Exception):
    """The token cannot be trusted; ``reason`` says why in words a client can act on."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class AuthConfigError(Exception):
    """The authorizer cannot verify anything (no issuer configured, JWKS unreachable)."""


@dataclass(frozen=True)
class Identity:
    subject: str
    email: str | None


class JwksCache:
    """The issuer's public keys, fetched over HTTP(S) and kept for ``max_age`` seconds.

    The issuer is asked again when the keys are stale, or when a token names a key we lack
    (rotation), but never more often than ``refresh_interval``: a caller sending made-up key ids
    cannot turn each request into a fetch. When a fetch fails, the keys we have keep serving.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._keys: dict[str, tuple[float, KeySet]] = {}  # url -> (when fetched, keys)
        self._asked: dict[str, float] = {}  # url -> when last asked, whether or not it answered

    def get(self, url: str, max_age: int, refresh_interval: int, *, missing_kid: bool = False) -> KeySet:
        cached = self._keys.get(url)
        if cached is not None and not self._due(url, cached[0], max_age, refresh_interval, missing_kid):
            return cached[1]
        # One caller fetches; while it does, the others serve with the keys we have instead of waiting.
        if not self._lock.acquire(blocking=cached is None):
            assert cached is not None
            return cached[1]
        try:
            cached = self._keys.get(url)  # another caller may have fetched while we waited
            if cached is not None and not self._due(url, cached[0], max_age, refresh_interval, missing_kid):
                return cached[1]
            if cached is None and time.monotonic() - self._asked.get(url, -1e9) < min(refresh_interval, 5):
                raise AuthConfigError(f"cannot read the issuer's keys from {url}: failed moments ago")
            self._asked[url] = time.monotonic()
            try:
                keys = _fetch(url)
            except AuthConfigError:
                if cached is not None:
                    return cached[1]
                raise
            self._keys[url] = (time.monotonic(), keys)
            return keys
        finally:
            self._lock.release()

    def _due(self, url: str, fetched: float, max_age: int, refresh_interval: int, missing_kid: bool) -> bool:
        now = time.monotonic()
        if now - self._asked.get(url, fetched) < refresh_interval:
            return False
        return missing_kid or now - fetched >= max_age


def _fetch(url: str) -> KeySet:
    if not url.startswith(("https://", "http://")):
        raise AuthConfigError(f"JWKS URL must be http(s): {url!r}")
    try:
        with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - scheme checked above
            return KeySet.import_key_set(json.loads(response.read()))
    except (OSError, ValueError, JoseError) as exc:
        raise AuthConfigError(f"cannot read the issuer's keys from {url}: {exc}") from None


_jwks = JwksCache()


def bearer_token(header: str | None) -> str:
    if not header:
        raise Unauthorized("missing bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, token = header.strip().partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("malformed Authorization header: expected 'Bearer <token>'")
    token = token.strip()
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        raise Unauthorized("malformed token: not a signed JWT")
    return token


def verify(header: str | None, settings: AuthSettings, now: float | None = None) -> Identity:
    """Check the token in an Authorization header value; return who the caller is."""
    if not settings.jwt_issuer:
        raise AuthConfigError("JWT_ISSUER is not set")
    token = bearer_token(header)
    url = settings.resolved_jwks_url
    max_age, interval = settings.jwks_max_age_seconds, settings.jwks_refresh_interval_seconds
    try:
        try:
            decoded = jwt.decode(token, _jwks.get(url, max_age, interval), algorithms=ALGORITHMS)
        except InvalidKeyIdError:
            # Signed with a key we have not fetched (rotation): ask the issuer, at most once per interval.
            decoded = jwt.decode(token, _jwks.get(url, max_age, interval, missing_kid=True), algorithms=ALGORITHMS)
    except JoseError as exc:
        raise Unauthorized(_describe(exc)) from None
    except (ValueError, TypeError, UnicodeDecodeError):
        raise Unauthorized("malformed token: not a signed JWT") from None
    claims: dict[str, Any] = dict(decoded.claims)
    _check_claims(claims, settings, time.time() if now is None else now)
    email = claims.get("email")
    return Identity(subject=str(claims["sub"]), email=str(email) if isinstance(email, str) else None)


def _check_claims(claims: dict[str, Any], settings: AuthSettings, now: float) -> None:
    registry = jwt.JWTClaimsRegistry(
        now=int(now),
        leeway=settings.clock_skew_seconds,
        iss={"essential": True, "value": settings.jwt_issuer.rstrip("/")},
        exp={"essential": True},
        sub={"essential": True},
    )
    try:
        registry.validate(claims)
    except ExpiredTokenError:
        raise Unauthorized("token has expired") from None
    except MissingClaimError as exc:
        raise Unauthorized(f"token lacks a required claim: {exc}") from None
    except JoseError as exc:
        if "iss" in str(exc):
            raise Unauthorized("token is from another issuer") from None
        raise Unauthorized(f"token claims are invalid: {exc}") from None
    audiences = claims.get("aud")
    audiences = [audiences] if isinstance(audiences, str) else list(audiences or [])
    presented = {*audiences, claims.get("client_id")}
    if settings.jwt_audience not in presented and not presented & _extra_audiences(settings):
        raise Unauthorized("token is for another audience")
    if claims.get("token_use", "id") not in ("id", "access"):
        raise Unauthorized("token is neither an ID nor an access token")


def _extra_audiences(settings: AuthSettings) -> set[str]:
    if not settings.jwt_extra_audiences_parameter:
        return set()
    from aws_lambda_powertools.utilities import parameters

    try:
        value = parameters.get_parameter(
            settings.jwt_extra_audiences_parameter, max_age=settings.jwt_extra_audiences_max_age_seconds
        )
    except Exception as exc:  # any failure to read it is a configuration problem
        raise AuthConfigError(f"cannot read {settings.jwt_extra_audiences_parameter}: {exc}") from None
    return {part.strip() for part in str(value).split(",") if part.strip()}


def _describe(exc: JoseError) -> str:
    name = type(exc).__name__
    if name == "BadSignatureError":
        return "token signature is invalid"
    if name in {"UnsupportedAlgorithmError", "MissingAlgorithmError"}:
        return "token is not signed with RS256"
    if "Key" in name:
        return "token is signed by a key the issuer does not publish"
    return "malformed token: not a signed JWT"


def reset_cache() -> None:
    """Forget fetched keys (tests that rotate keys)."""
    global _jwks
    _jwks = JwksCache()
    auth_settings.cache_clear()
