"""Unsubscribe tokens: they name their owner and recipient, and nobody without the key can make,
alter or re-sign one; a rotated-out key keeps verifying the links it signed."""

from __future__ import annotations

import email
import email.policy
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from reminders.calendar import Occurrence
from reminders.rendering import render_reminder
from reminders.unsubscribe import (
    InvalidToken,
    KeysNotConfigured,
    UnsubscribeLinks,
    load_keys,
    make_token,
    read_token,
)

KEY = b"k" * 32
OLD_KEY = b"o" * 40
OTHER_KEY = b"x" * 32
names = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), min_size=1, max_size=320)


@given(owner=names, recipient=names)
def test_a_token_names_its_owner_and_recipient(owner: str, recipient: str) -> None:
    subscription = read_token([KEY], make_token(KEY, owner, recipient))
    assert (subscription.owner, subscription.recipient) == (owner, recipient.lower())


@given(owner=names, recipient=names, data=st.data())
def test_an_altered_token_is_refused(owner: str, recipient: str, data: st.DataObject) -> None:
    token = make_token(KEY, owner, recipient)
    i = data.draw(st.integers(0, len(token) - 1))
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_."
    replacement = data.draw(st.sampled_from(alphabet).filter(lambda c: c != token[i]))
    altered = token[:i] + replacement + token[i + 1 :]
    with pytest.raises(InvalidToken):
        read_token([KEY], altered)


@given(owner=names, recipient=names, data=st.data())
def test_a_truncated_or_extended_token_is_refused(owner: str, recipient: str, data: st.DataObject) -> None:
    token = make_token(KEY, owner, recipient)
    cut = data.draw(st.integers(0, len(token) - 1))
    for candidate in (
        token[:cut],
        token + data.draw(st.text(min_size=1, max_size=5)),
        token[cut + 1 :] if cut else "." + token,
    ):
        with pytest.raises(InvalidToken):
            read_token([KEY], candidate)


@given(owner=names, recipient=names, forger_owner=names)
def test_a_token_signed_with_another_key_or_re_signed_payload_is_refused(
    owner: str, recipient: str, forger_owner: str
) -> None:
    with pytest.raises(InvalidToken):
        read_token([KEY], make_token(OTHER_KEY, owner, recipient))
    # Someone else's payload under a valid token's signature
    genuine = make_token(KEY, owner, recipient)
    other = make_token(KEY, forger_owner, recipient)
    if genuine != other:
        with pytest.raises(InvalidToken):
            read_token([KEY], other.split(".")[0] + "." + genuine.split(".")[1])


@given(st.text(max_size=300))
def test_any_string_is_refused_or_read_never_raises_otherwise(text: str) -> None:
    try:
        read_token([KEY], text)
    except InvalidToken:
        return
    raise AssertionError(f"{text!r} passed as a token")


def test_rotation_keeps_the_previous_keys_links_valid() -> None:
    token = make_token(OLD_KEY, "owner-1", "ana@example.com")
    assert read_token([KEY, OLD_KEY], token).owner == "owner-1"
    with pytest.raises(InvalidToken):
        read_token([KEY], token)


def test_keys_come_newest_first_and_short_ones_are_refused() -> None:
    assert load_keys(keys=f"{KEY.decode()}, {OLD_KEY.decode()}", secret_arn=None) == [KEY, OLD_KEY]
    with pytest.raises(KeysNotConfigured):
        load_keys(keys="short", secret_arn=None)
    with pytest.raises(KeysNotConfigured):
        load_keys(keys=None, secret_arn=None)


def test_every_reminder_carries_the_one_click_headers_and_a_visible_link() -> None:
    links = UnsubscribeLinks("https://api.example.com/dev", KEY)
    owner, recipient = "0f8e-owner-" + "x" * 300, "ana." + "a" * 200 + "@example.com"
    url = links.url(owner, recipient)
    occurrence = Occurrence(uuid.uuid4(), "Team sync", None, datetime(2026, 12, 1, 9, tzinfo=UTC), "UTC")
    message = links.apply(
        render_reminder(recipient, occurrence, now=datetime.now(UTC), links=[links.link(owner, recipient)]), url
    )

    parsed = email.message_from_bytes(message.raw("reminders@example.com"), policy=email.policy.default)

    assert parsed["List-Unsubscribe"] == f"<{url}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    # Not folded into encoded words, which no mail client reads in this header
    assert "=?" not in message.raw("reminders@example.com").decode().split("\r\n\r\n")[0]
    text = parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    page = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert url in text
    assert f'href="{url}"' in page
    assert read_token([KEY], url.rsplit("/", 1)[1]).owner == owner
