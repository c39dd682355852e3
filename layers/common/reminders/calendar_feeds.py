"""The private calendar feed: handing out its secret URL, revoking it, and serving it.

The secret is never stored: it is an HMAC of the feed's random id under a key that lives outside
the database (``CALENDAR_FEED_KEY``), so the same URL can be shown again, and the table keeps only
the SHA-256 of the secret to find the feed by. Whoever reads the database learns no feed URL.
Revoking deletes the row; the next request makes a new feed with a new id, so a new secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import uuid
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from reminders import calendar
from reminders.errors import NotFound
from reminders.models import CalendarFeed, Event

_PURPOSE = b"event-reminders/calendar-feed/v1\x00"
# 32 bytes of HMAC in unpadded base64url.
_SECRET = re.compile(r"[A-Za-z0-9_-]{43}")
MIN_KEY_BYTES = 32


class FeedNotConfigured(Exception):
    """No key to derive feed secrets from (CALENDAR_FEED_KEY)."""


def feed_secret(key: bytes, feed_id: uuid.UUID) -> str:
    if len(key) < MIN_KEY_BYTES:
        raise FeedNotConfigured(f"CALENDAR_FEED_KEY must hold at least {MIN_KEY_BYTES} bytes")
    mac = hmac.new(key, _PURPOSE + feed_id.bytes, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac).decode().rstrip("=")


def secret_hash(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def feed_url(base_url: str, secret: str) -> str:
    return f"{base_url.rstrip('/')}/calendar/{secret}.ics"


def get_or_create_feed(session: Session, owner: str, key: bytes, now: datetime) -> str:
    """The caller's feed secret, creating the feed on first use (two racing first calls get one feed)."""
    feed_id = uuid.uuid4()
    secret = feed_secret(key, feed_id)
    session.execute(
        insert(CalendarFeed)
        .values(owner=owner, feed_id=feed_id, secret_hash=secret_hash(secret), created_at=now)
        .on_conflict_do_nothing(index_elements=[CalendarFeed.owner])
    )
    stored = session.scalars(select(CalendarFeed.feed_id).where(CalendarFeed.owner == owner)).one()
    return secret if stored == feed_id else feed_secret(key, stored)


def revoke_feed(session: Session, owner: str) -> None:
    session.execute(delete(CalendarFeed).where(CalendarFeed.owner == owner))


def feed_document(session: Session, secret: str, now: datetime) -> bytes:
    """The feed of whoever owns ``secret``: every live event; :class:`NotFound` for any other string."""
    if not _SECRET.fullmatch(secret):
        raise NotFound("unknown calendar feed")
    owner = session.scalars(select(CalendarFeed.owner).where(CalendarFeed.secret_hash == secret_hash(secret))).first()
    if owner is None:
        raise NotFound("unknown calendar feed")
    events = session.scalars(
        select(Event).where(Event.owner == owner, Event.deleted_at.is_(None)).order_by(Event.starts_at, Event.id)
    )
    return calendar.feed(events, now=now)
