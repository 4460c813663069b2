"""The injected clock: heat decays with time, so every time read goes through one of these."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol


class Clock(Protocol):
    """Anything that returns the current time in seconds when called."""

    def __call__(self) -> float: ...


def monotonic_clock() -> float:
    """The production clock: monotonic, so heat never jumps when the wall clock is adjusted."""
    return time.monotonic()


@dataclass
class ManualClock:
    """A clock that moves only when told to: makes decay arithmetic exact in tests."""

    now: float = 0.0
    """The current time in seconds."""

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward and return the new time."""
        if seconds < 0:
            raise ValueError("a clock does not run backwards")
        self.now += seconds
        return self.now
