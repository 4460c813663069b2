"""Reading a group conversation off the director's path: what was said (`hear`), whether the
director has already decided on the last message (`settled`), and the reviews of its choice
since (`reviews_since`). Pure readings of events; nothing here decides."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from personaweb.personas.heat.chat import USER, GroupMessage
from personaweb.personas.state import Event, EventKind
from personaweb.personas.tree import Action

REVIEWS = (EventKind.REJECTED, EventKind.FEEDBACK, EventKind.SUPERSEDED)
"""What a person's review of the director's choice leaves on its history."""


@dataclass(frozen=True)
class Heard:
    """The group conversation as the director reads it off its path."""

    messages: list[GroupMessage]
    """Every message, oldest first."""
    node_ids: list[str]
    """The node each message came from."""
    picked: str | None
    """In manual order: the speaker the user picked with their last message."""
    passed: frozenset[str] = frozenset()
    """Characters who chose not to answer the last message (null action)."""


def hear(history: Sequence[Event]) -> Heard:
    """The conversation in the director's history: the user's messages and its characters'
    replies (a character's pass is no message, but it is remembered until the next one)."""
    messages: list[GroupMessage] = []
    ids: list[str] = []
    picked: str | None = None
    passed: set[str] = set()
    for event in history:
        if event.kind is EventKind.INBOUND and event.sender == USER:
            messages.append(GroupMessage(USER, event.text, event.created_at))
            ids.append(event.node_id)
            picked = str(event.data.get("speaker") or "") or None
            passed = set()
        elif event.kind is EventKind.CHILD_RESULT and event.target is not None:
            if event.action is Action.PASS:
                passed.add(event.target)
                continue
            messages.append(GroupMessage(event.target, event.text, event.created_at))
            ids.append(event.node_id)
            passed = set()
    return Heard(messages, ids, picked, frozenset(passed))


def settled(history: Sequence[Event], heard: Heard) -> list[Event] | None:
    """The complete set of decisions taken on the last message, oldest first, if the path
    holds one after it (reviews of the director's choice may follow it); else None."""
    tail = list(history)
    while tail and tail[-1].kind in REVIEWS:
        tail.pop()
    newest: list[Event] = []
    while tail and tail[-1].kind is EventKind.DECISION:
        newest.append(tail.pop())
    if not newest:
        return None
    last = newest[0].data
    if last.get("heard") != heard.node_ids[-1] or last.get("index") != last.get("of", 0) - 1:
        return None
    return list(reversed(newest[: int(last["of"])]))


def reviews_since(history: Sequence[Event]) -> list[Event]:
    """Rejections and feedback on the director's proposals after its last decisions."""
    out: list[Event] = []
    for event in reversed(history):
        if event.kind not in REVIEWS:
            break
        out.append(event)
    return out
