from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def runs_cleaned(clean_runs: None) -> None:
    """Every test here starts with no runs and leaves none behind (see `clean_runs`)."""
