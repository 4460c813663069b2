"""API tests: alice's and bob's tokens, and clients that send them."""

from __future__ import annotations

from typing import Any

import pytest

from personaweb.api import tokens
from tests.web.conftest import runs_cleaned  # noqa: F401  (runs are process-wide: see there)


@pytest.fixture
def alice_token(alice) -> str:
    return tokens.create(alice, "alice's script").secret


@pytest.fixture
def bob_token(bob) -> str:
    return tokens.create(bob, "bob's script").secret


def bearer(token: str) -> dict[str, Any]:
    return {"Authorization": f"Bearer {token}"}
