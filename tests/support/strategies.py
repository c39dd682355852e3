"""Hypothesis strategies for what a caller may send: any JSON value, date-time strings of every
year and offset, request bodies over the API's field names."""

from __future__ import annotations

from datetime import datetime

from hypothesis import strategies as st

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=10**20, max_value=10**400)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
    | st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Zs", "Lu"]))
)
JSON_VALUES = st.recursive(
    JSON_SCALARS, lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4)
)
# Date-times a parser might accept: every year, every offset a string can carry, both case forms.
OFFSETS = st.integers(min_value=-23 * 60 - 59, max_value=23 * 60 + 59).map(
    lambda m: f"{'+' if m >= 0 else '-'}{abs(m) // 60:02d}:{abs(m) % 60:02d}"
)
DATE_TIME_STRINGS = st.builds(
    lambda moment, offset, separator, fraction: (
        moment.strftime("%Y-%m-%d") + separator + moment.strftime("%H:%M:%S") + fraction + offset
    ),
    st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59)),
    OFFSETS | st.sampled_from(["Z", "z"]),
    st.sampled_from(["T", "t", " "]),
    st.sampled_from(["", ".5", ".123456", ".123456789"]),
)
FIELD_VALUES = JSON_VALUES | DATE_TIME_STRINGS | st.lists(st.fixed_dictionaries({"minutes_before": JSON_VALUES}))
FIELDS = ["title", "description", "starts_at", "timezone", "recipients", "reminders"]
BODIES = st.dictionaries(st.sampled_from([*FIELDS, "owner", ""]), FIELD_VALUES, max_size=7)
