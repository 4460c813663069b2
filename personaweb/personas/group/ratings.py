"""Background heat ratings, and where they live: on the path.

The rules, applied here and nowhere else:
  - A rating is asked for after each message, for every async-rating character who did not
    write it, and runs beside the conversation, never in front of a reply (`BackgroundRatings`
    holds the calls in flight).
  - A rating that has landed is written on the path by the next decision about the character
    it rates: that decision node's data lists, under `ratings`, each rating of the character
    that landed since and that the path did not hold yet (`LandedRating.to_dict`).
  - Deciding reads ratings off the path (`on_path`). The only ones read from memory are those
    that landed in this process and that no decision on this path has written yet, and the
    decision that uses them writes them: so every decision is replayed from its path alone, in
    whichever process reads it.

Why the next decision node, not the node of the message rated: a rating lands while the path
has grown below that node, and a node with a child never changes in any way the path's
reading depends on (personas/state.py): readers derive a path once and extend it by the nodes
that follow. A new decision node is a leaf, read like any other.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Collection, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personaweb.personas.heat.rating import HeatRating, RatingResult
from personaweb.personas.state import Event, EventKind

RATINGS = "ratings"
"""The key of a decision node's data that holds the ratings it wrote on the path."""


@dataclass(frozen=True)
class LandedRating:
    """A background rating of one character after one message."""

    heard: str
    """The node of the message it rated."""
    character: str
    """The slug of the character rated."""
    rating: HeatRating
    """What the model said."""
    tokens: float | None = None
    """Prompt plus completion tokens of its call, when the call was recorded."""
    latency_s: float | None = None
    """Seconds its call took, when recorded."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.heard, self.character)

    @classmethod
    def of(cls, heard: str, character: str, result: RatingResult) -> LandedRating | None:
        """From a finished call; None when it gave no rating (a lost rating changes nothing)."""
        if result.rating is None:
            return None
        record = result.record
        if record is None:
            return cls(heard, character, result.rating)
        tokens = float((record.prompt_tokens or 0) + (record.completion_tokens or 0))
        return cls(heard, character, result.rating, tokens, record.latency_s)

    def to_dict(self) -> dict[str, Any]:
        """As a decision node stores it (the character is the node's own)."""
        out: dict[str, Any] = {
            "heard": self.heard,
            "interest": self.rating.interest,
            "boredom": self.rating.boredom,
            "wait_seconds": self.rating.wait_seconds,
        }
        if self.tokens is not None:
            out.update(tokens=self.tokens, latency_s=self.latency_s)
        return out

    @classmethod
    def from_dict(cls, character: str, data: Mapping[str, Any]) -> LandedRating | None:
        """Read back from a decision node; None for anything malformed (node data may come
        from an imported file)."""
        try:
            rating = HeatRating(
                interest=_finite(data["interest"]),
                boredom=_finite(data["boredom"]),
                wait_seconds=_finite(data["wait_seconds"]),
            )
            tokens = _finite(data["tokens"]) if "tokens" in data else None
            latency = _finite(data["latency_s"]) if "latency_s" in data else None
            return cls(str(data["heard"]), character, rating, tokens, latency)
        except (KeyError, TypeError, ValueError):
            return None

    def numbers(self) -> dict[str, float]:
        """What a decision that used it shows among its numbers."""
        out = {
            "rating_interest": self.rating.interest,
            "rating_boredom": self.rating.boredom,
            "rating_wait_s": self.rating.wait_seconds,
        }
        if self.tokens is not None:
            out.update(rating_tokens=self.tokens, rating_latency_s=self.latency_s or 0.0)
        return out


def _finite(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a finite number: {value!r}")
    return float(value)


def on_path(history: Sequence[Event]) -> dict[tuple[str, str], LandedRating]:
    """Every rating the director's decisions wrote on this path, by (message node, slug)."""
    out: dict[tuple[str, str], LandedRating] = {}
    for event in history:
        if event.kind is not EventKind.DECISION:
            continue
        character = str(event.data.get("character", ""))
        for raw in event.data.get(RATINGS) or ():
            landed = LandedRating.from_dict(character, raw) if isinstance(raw, Mapping) else None
            if landed is not None:
                out[landed.key] = landed
    return out


class BackgroundRatings:
    """Rating calls running in this process, by (message node id, character slug), and what
    they gave until a decision writes it on the path. Node ids are unique across sessions, so
    one instance serves a whole process; it keeps the latest `keep` results (a rating on a
    branch nobody follows again is never written)."""

    def __init__(self, keep: int = 500) -> None:
        self.keep = keep
        """How many landed ratings to hold (oldest dropped first): only recent ones matter."""
        self.results: dict[tuple[str, str], LandedRating | None] = {}
        """Finished calls (None: the call gave no rating)."""
        self.tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        """Calls in flight."""

    def schedule(self, heard: str, character: str, call: Coroutine[Any, Any, RatingResult]) -> None:
        """Run `call` in the background, unless this rating was asked for already."""
        key = (heard, character)
        if key in self.results or key in self.tasks:
            call.close()
            return

        async def runner() -> None:
            try:
                self.results[key] = LandedRating.of(heard, character, await call)
            except Exception:  # a lost rating changes nothing; never an orphan error
                self.results[key] = None
            finally:
                self.tasks.pop(key, None)
                while len(self.results) > self.keep:
                    self.results.pop(next(iter(self.results)))

        self.tasks[key] = asyncio.get_running_loop().create_task(runner())

    def landed(self, node_ids: Collection[str]) -> list[LandedRating]:
        """The ratings that landed here of the messages `node_ids`."""
        return [r for r in self.results.values() if r is not None and r.heard in node_ids]

    async def settle(self) -> None:
        """Wait for ratings still running (tests and shutdown)."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks.values()), return_exceptions=True)
