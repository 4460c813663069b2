"""Fixtures shared by the heat tests."""

from __future__ import annotations

import pytest
from heat_cast import CAST

from personaweb.personas.heat import ManualClock, Member


@pytest.fixture
def members() -> list[Member]:
    return list(CAST)


@pytest.fixture
def clock() -> ManualClock:
    # Not zero, so that arithmetic mistakes with absolute times would show.
    return ManualClock(1000.0)
