"""Polls that cannot pass by running out of time: every wait has a deadline and fails there,
saying what it waited for. (A poll that falls through at its deadline lets a feature vanish
while the suite stays green.)"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

DEFAULT_TIMEOUT_S = 10.0


async def eventually(
    check: Callable[[], Any | Awaitable[Any]],
    what: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = 0.02,
) -> Any:
    """Call `check` (sync or async) until it returns something truthy, and return that; fail
    the test after `timeout_s`, naming `what` it waited for."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"waited {timeout_s:g} s for {what}: it never happened")
        await asyncio.sleep(interval_s)


def eventually_sync(
    check: Callable[[], Any],
    what: str,
    *,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    interval_s: float = 0.05,
) -> Any:
    """`eventually` for code outside an event loop."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() >= deadline:
            pytest.fail(f"waited {timeout_s:g} s for {what}: it never happened")
        time.sleep(interval_s)
