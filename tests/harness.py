"""Fixtures the gateway tests build with pytest (bridge/testing/ ships, so it cannot)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager
from typing import TypeVar

import pytest
import pytest_asyncio

T = TypeVar("T")


def per_module(
    name: str, open_: Callable[[], AbstractAsyncContextManager[T]], reset: Callable[[T], object]
) -> tuple[object, object]:
    """Two fixtures: ``_<name>``, one ``open_()`` for the whole module (a uvicorn start/stop
    costs ~0.1 s), and ``<name>``, the same object after ``reset`` for each test.

    Use as ``_served, fake = per_module("fake", FakeX, FakeX.reset)`` at module level.
    """

    @pytest_asyncio.fixture(scope="module", loop_scope="module", name=f"_{name}")
    async def served() -> AsyncIterator[T]:
        async with open_() as value:
            yield value

    @pytest.fixture(name=name)
    def fresh(request: pytest.FixtureRequest) -> T:
        value: T = request.getfixturevalue(f"_{name}")
        reset(value)
        return value

    return served, fresh
