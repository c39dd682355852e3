"""One-click unsubscribe (RFC 8058): signed tokens naming an owner and a recipient, and the
links and headers every reminder carries.

A token is ``<payload>.<mac>``, both unpadded base64url: the payload is the owner and the
recipient (lower case), the MAC an HMAC-SHA256 of it under the unsubscribe key. Nothing is stored:
whoever holds a valid token may stop that owner's reminders to that recipient, and nobody can make
or alter one without the key. Decoding is strict (canonical base64 only), so no two strings are
the same token.

Keys rotate without breaking links already sent: the first key signs, every key verifies. On AWS
the key is a Secrets Manager secret (``UNSUBSCRIBE_KEY_SECRET_ARN``): its ``AWSCURRENT`` version
signs and its ``AWSPREVIOUS`` version (what a ``put-secret-value`` leaves behind) still verifies.
Locally (and in tests) ``UNSUBSCRIBE_KEYS`` holds the keys, newest first, comma-separated.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from reminders.rendering import Email, Link

PURPOSE = b"event-reminders/unsubscribe/v1\x00"
MIN_KEY_BYTES = 32
MAC_BYTES = 32
# Long enough for a 320-character owner and recipient; the route refuses longer paths.
MAX_TOKEN_LENGTH = 1200
ONE_CLICK = ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click")
# Seconds fetched keys are reused before Secrets Manager is asked again (a rotation reaches
# every running function within this long).
KEY_CACHE_SECONDS = 300


class InvalidToken(Exception):
    """Not a token signed by one of our keys (forged, altered, truncated, or nonsense)."""


class KeysNotConfigured(Exception):
    """No unsubscribe key (UNSUBSCRIBE_KEYS or UNSUBSCRIBE_KEY_SECRET_ARN), or one too short."""


@dataclass(frozen=True, slots=True)
class Subscription:
    """Whose reminders (``owner``) reach whom (``recipient``, lower case)."""

    owner: str
    recipient: str


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    try:
        data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise InvalidToken from None
    if _b64(data) != text:  # a non-canonical spelling of the same bytes is not the same token
        raise InvalidToken
    return data


def _mac(key: bytes, payload: bytes) -> bytes:
    return hmac.new(key, PURPOSE + payload, hashlib.sha256).digest()


def _checked(keys: Sequence[bytes]) -> Sequence[bytes]:
    if not keys:
        raise KeysNotConfigured("no unsubscribe key: set UNSUBSCRIBE_KEYS or UNSUBSCRIBE_KEY_SECRET_ARN")
    if any(len(key) < MIN_KEY_BYTES for key in keys):
        raise KeysNotConfigured(f"unsubscribe keys must hold at least {MIN_KEY_BYTES} bytes")
    return keys


def make_token(key: bytes, owner: str, recipient: str) -> str:
    (key,) = _checked([key])
    if not owner or "\x00" in owner or not recipient or "\x00" in recipient:
        raise ValueError("owner and recipient must be non-empty and hold no NUL")
    payload = owner.encode() + b"\x00" + recipient.lower().encode()
    return f"{_b64(payload)}.{_b64(_mac(key, payload))}"


def read_token(keys: Sequence[bytes], token: str) -> Subscription:
    """The owner and recipient a token names, if one of ``keys`` signed it; else :class:`InvalidToken`."""
    _checked(keys)
    if not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH or token.count(".") != 1:
        raise InvalidToken
    payload_text, mac_text = token.split(".")
    payload, mac = _unb64(payload_text), _unb64(mac_text)
    if len(mac) != MAC_BYTES or not any(hmac.compare_digest(mac, _mac(key, payload)) for key in keys):
        raise InvalidToken
    owner, _, recipient = payload.partition(b"\x00")
    try:
        subscription = Subscription(owner.decode(), recipient.decode())
    except UnicodeDecodeError:
        raise InvalidToken from None
    if not subscription.owner or not subscription.recipient or "\x00" in subscription.recipient:
        raise InvalidToken
    return subscription


def unsubscribe_url(base_url: str, token: str) -> str:
    return f"{base_url.rstrip('/')}/unsubscribe/{token}"


@dataclass(frozen=True, slots=True)
class UnsubscribeLinks:
    """Adds the unsubscribe link and RFC 8058 headers to reminders, signed with the current key."""

    base_url: str
    key: bytes

    def url(self, owner: str, recipient: str) -> str:
        return unsubscribe_url(self.base_url, make_token(self.key, owner, recipient))

    def link(self, owner: str, recipient: str) -> Link:
        return Link("Unsubscribe from these reminders", self.url(owner, recipient))

    def headers(self, url: str) -> tuple[tuple[str, str], ...]:
        return (("List-Unsubscribe", f"<{url}>"), ONE_CLICK)

    def apply(self, email: Email, url: str) -> Email:
        return email.with_headers(*self.headers(url))


# Keys from Secrets Manager, per secret: (fetched at, keys newest first).
_cache: dict[str, tuple[float, list[bytes]]] = {}
_cache_lock = threading.Lock()


def load_keys(*, keys: str | None, secret_arn: str | None, endpoint_url: str | None = None) -> list[bytes]:
    """The unsubscribe keys, newest first: ``keys`` (comma-separated) if given, else the secret's
    AWSCURRENT and AWSPREVIOUS versions (cached for KEY_CACHE_SECONDS)."""
    if keys:
        return list(_checked([k.strip().encode() for k in keys.split(",") if k.strip()]))
    if not secret_arn:
        raise KeysNotConfigured("no unsubscribe key: set UNSUBSCRIBE_KEYS or UNSUBSCRIBE_KEY_SECRET_ARN")
    with _cache_lock:
        cached = _cache.get(secret_arn)
        if cached and time.monotonic() - cached[0] < KEY_CACHE_SECONDS:
            return cached[1]
    fetched = list(_checked(_fetch_versions(secret_arn, endpoint_url)))
    with _cache_lock:
        _cache[secret_arn] = (time.monotonic(), fetched)
    return fetched


def _fetch_versions(secret_arn: str, endpoint_url: str | None) -> list[bytes]:
    # Imported here: boto3 costs ~220 ms of a cold start.
    import boto3
    from botocore.exceptions import ClientError

    client: Any = boto3.client("secretsmanager", endpoint_url=endpoint_url)
    found: list[bytes] = []
    for stage in ("AWSCURRENT", "AWSPREVIOUS"):
        try:
            value = client.get_secret_value(SecretId=secret_arn, VersionStage=stage)
        except ClientError as exc:
            # A secret never rotated has no AWSPREVIOUS version.
            if stage == "AWSPREVIOUS" and exc.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
                break
            raise KeysNotConfigured(f"cannot read the unsubscribe key secret: {exc}") from None
        found.append(str(value["SecretString"]).encode())
    return found


def forget_cached_keys() -> None:
    with _cache_lock:
        _cache.clear()
