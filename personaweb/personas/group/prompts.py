"""The text a group chat's characters are told: what was said since they last spoke."""

from __future__ import annotations

from collections.abc import Sequence

from personaweb.personas.group.conversation import Heard
from personaweb.personas.heat.chat import GroupMessage, Member, display_name
from personaweb.personas.heat.null_action import pass_instruction

HEARD_CHARS = 2000
"""How much of what was said since a character last spoke its turn message quotes, newest
lines first (at least the newest line, whole). A character new to the conversation would
otherwise hear all of it in one message, which outgrows a small model's window (2,048 tokens
for the embedded one) however many earlier turns the fitting leaves out; what it said itself
before is in its own history."""


def turn_message(slug: str, heard: Heard, members: Sequence[Member], *, can_pass: bool) -> str:
    """What a character is told when its turn comes: what was said since it last spoke.
    `can_pass`: its reply policy is the null action, so it may choose to say nothing."""
    since: list[GroupMessage] = []
    left_out = 0
    size = 0
    for message in reversed(heard.messages):
        if message.speaker == slug:
            break
        size += len(message.text)
        if since and size > HEARD_CHARS:
            left_out += 1
            continue
        since.append(message)
    since.reverse()
    roster = ", ".join(["the user", *(m.name for m in members if m.slug != slug)])
    # Quoted, one per line: a chat transcript in "Name: text" form invites a model to
    # continue it, writing everyone's lines instead of its own.
    lines = "\n".join(
        f"- {display_name(members, m.speaker)} said: \u201c{m.text}\u201d" for m in since
    )
    if left_out:
        earlier = "line" if left_out == 1 else "lines"
        lines = f"- ({left_out} earlier {earlier} not shown)\n{lines}"
    text = (
        f"You are in a group chat with {roster}. Since you last spoke:\n{lines}\n\n"
        "Say your next line to the group: only your own words, one short line, "
        "without your name in front."
    )
    if can_pass:
        text += " " + pass_instruction(display_name(members, slug))
    return text


def reviewer_note(message: str, note: str) -> str:
    """A character's turn message with the reviewer's note on the director's last choice."""
    return f"{message}\n\n(Reviewer note: {note})" if note else message
