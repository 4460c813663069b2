"""The cast of the heat tests: three characters in one group chat, and a history builder."""

from __future__ import annotations

from personaweb.personas.heat import GroupMessage, Member

ANN = Member("ann", "Ann Lee", aliases=("Annie",), talkativeness=0.8, persona="A chef.")
BOB = Member("bob", "Bob Stone", talkativeness=0.5, persona="A gardener.")
CARA = Member("cara_diaz", "Cara Diaz", talkativeness=0.2, persona="A shy baker.")
CAST = [ANN, BOB, CARA]


def chat(*lines: tuple[str, str], start: float = 0.0, gap: float = 5.0) -> list[GroupMessage]:
    """A history from (speaker, text) pairs, one message every `gap` seconds."""
    return [GroupMessage(speaker, text, start + i * gap) for i, (speaker, text) in enumerate(lines)]
