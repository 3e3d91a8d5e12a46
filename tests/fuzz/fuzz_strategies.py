"""Hypothesis strategies for payloads: a vendor's fields, mostly well typed, and junk."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import strategies as st

scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()  # NaN and infinities too: Python's json writes and reads them
    | st.text(max_size=30)
)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
# What a vendor's fields plausibly hold: each field is mostly that, sometimes anything at all.
odd = st.sampled_from(
    [
        *("", " ", "\x00", "²", "9" * 40, 10**30, -1, 1.5, 1e300, True, False, [1], {"a": 1}),
        *("2026-13-45 25:61:61", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"),
    ]
)
values = odd | json_values
phones = st.sampled_from(["+15551234567", "15551234567", "0032470123456", "BANK", "12345"])
ids = st.text("abcdefXYZ0123456789-", min_size=1, max_size=12) | st.integers(0, 10**6)
texts = st.text(max_size=30)
times = st.sampled_from(
    ["2026-01-02T03:04:05Z", "2026-01-02 03:04:05", "05 jun 2025, 08:44:46", "1749113086"]
)
stamps = st.sampled_from([1749113086, 1749113086000, "1749113086", 0, "inf", 1e300])


def mostly(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any] = values) -> Any:
    """``good`` five times in six (``one_of`` would merge repeated branches into one)."""
    return st.sampled_from([True] * 5 + [False]).flatmap(lambda ok: good if ok else bad)


def either(good: st.SearchStrategy[Any], bad: st.SearchStrategy[Any]) -> Any:
    return st.booleans().flatmap(lambda ok: good if ok else bad)


def objects(
    required: dict[str, st.SearchStrategy[Any]], optional: dict[str, st.SearchStrategy[Any]]
) -> st.SearchStrategy[dict[str, Any]]:
    """The vendor's fields: the required ones mostly well typed, so that the parser gets past
    them; the optional ones, where type confusion hides, as often anything as not."""
    maybe = {name: either(good, values) for name, good in optional.items()}
    maybe["unexpected"] = json_values
    return st.fixed_dictionaries(
        {name: mostly(good) for name, good in required.items()}, optional=maybe
    )


def json_bodies(shapes: st.SearchStrategy[Any]) -> st.SearchStrategy[bytes]:
    """The vendor's objects mostly; else a list of them, any JSON at all, or any bytes."""
    junk = st.lists(shapes, max_size=3) | json_values
    encoded = mostly(shapes, junk).map(lambda value: json.dumps(value).encode())
    return mostly(encoded, st.binary(max_size=64))
