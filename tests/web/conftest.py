from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from personaweb.web import runs


@pytest.fixture(autouse=True)
async def clean_runs() -> AsyncIterator[None]:
    """Runs are process-wide: each test starts with none and leaves none behind."""
    runs.reset_for_tests()
    yield
    for session_id in list(runs._tasks):
        await runs.stop(session_id)
    runs.reset_for_tests()
