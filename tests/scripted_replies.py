"""Scripted replies that play PersonaWeb's hierarchies on the scripted OpenAI-compatible server,
routed by each persona's system prompt: deterministic text, so tests can look for it in pages,
and the benchmarks drive PersonaWeb and its peer with the very same replies."""

from __future__ import annotations

import json
import re
from typing import Any


def _last(messages: list[dict[str, str]], prefixes: tuple[str, ...]) -> dict[str, str] | None:
    for m in reversed(messages):
        if m["role"] == "user" and m["content"].startswith(prefixes):
            return m
    return None


def orchestrator_decision(messages: list[dict[str, str]]) -> str:
    """The nested orchestrator's move, as its instructions ask: the person's message to the
    responder, the responder's line to the style rewriter, the rewritten line to the caller."""
    step = _last(messages, ("Message from", "Reply from"))
    text = step["content"] if step else ""
    said = text.partition(": ")[2]
    if text.startswith("Message from"):
        decision = {"action": "delegate", "to": "responder", "message": said}
    elif text.startswith("Reply from responder"):
        decision = {"action": "delegate", "to": "style_rewriter", "message": said}
    else:
        decision = {"action": "reply", "to": "caller", "message": said}
    return json.dumps(decision)


def dialogue_responder(body: dict[str, Any]) -> str:
    """Plays the dialogue hierarchy's three personas, routed by their system prompts.

    The orchestrator follows its instructions (responder, then rewriter, then reply); the
    responder answers in character and gives a different line after feedback or a rejection;
    the rewriter marks the line as rewritten. Every text is deterministic, so tests can look
    for it in the page.
    """
    messages = body["messages"]
    system = messages[0]["content"]
    last = messages[-1]["content"]
    if system.startswith("You produce"):
        return orchestrator_decision(messages)
    if "Stay in character" in system:
        takes = sum(1 for m in messages if m["role"] == "assistant")
        if last.startswith("Reviewer feedback"):
            note = last.partition(": ")[2]
            return f"Take {takes + 1}, as you asked ({note}): who asks?"
        if last.startswith("A reviewer rejected"):
            return f"Take {takes + 1}: I will not say that again."
        heard = re.sub(r"\s+", " ", last)[:60]
        return f"Line {takes + 1}: you said '{heard}', and I heed it not."
    if system.startswith("You rewrite"):
        return f"[styled] {last}"
    if system.startswith("You judge whether"):
        # The linear strategy's goal-alignment check of the last lines.
        return json.dumps({"score": 0.8, "drifting": False, "hint": ""})
    return "ok"


_NAMED = (
    re.compile(r"^You are (?P<name>.+?), speaking in a (?:conversation|roleplay)"),
    re.compile(r"^You are the judgement of (?P<name>.+?), a character"),
    re.compile(r"^You track the mood of (?P<name>.+?), a character"),
)


def _character(system: str) -> str:
    for pattern in _NAMED:
        found = pattern.match(system)
        if found:
            return found["name"]
    return ""


def group_responder(body: dict[str, Any]) -> str:
    """Plays every persona of a group chat, routed by system prompt, deterministically.

    A character whose first name is in the latest message wants to answer (pre-pass yes with
    confidence 0.9, no pass); anyone else is lukewarm (pre-pass no at 0.3, passes when it may).
    Single-strategy characters and nested responders say a line that names themselves and
    nobody else, so heat alone (not mentions) decides what follows. The nested orchestrator
    and rewriter are played by `dialogue_responder`.
    """
    messages = body["messages"]
    system = messages[0]["content"]
    last = messages[-1]["content"]
    name = _character(system)
    first = name.split()[0] if name else ""
    addressed = bool(first) and re.search(rf"\b{re.escape(first)}\b", last) is not None
    if system.startswith("You are the judgement of"):
        # The pre-pass sees the recent history; only who the latest message names decides.
        named = re.search(r"^Named in it: (.*)$", last, re.MULTILINE)
        addressed = bool(named) and name in named[1]
        verdict = {
            "should_respond": addressed,
            "reason": "named in the message" if addressed else "not my conversation",
            "confidence": 0.9 if addressed else 0.3,
        }
        return json.dumps(verdict)
    if system.startswith("You track the mood of"):
        return json.dumps({"interest": 0.4, "boredom": 0.3, "wait_seconds": 0})
    if system.startswith("You are ") and (
        "speaking in a conversation" in system or "speaking in a roleplay" in system
    ):
        if "[pass]" in last and not addressed:
            return "[pass]"
        takes = sum(1 for m in messages if m["role"] == "assistant")
        return f"{name} here, line {takes + 1}."
    return dialogue_responder(body)
