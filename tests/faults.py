"""The faults of the fault suite: how a model server lets PersonaWeb down, and a responder that
plays a hierarchy on the scripted server with one of them switched on for one persona's calls.
Shared by the core suite (tests/personas/test_fault_suite.py) and the web one."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from personaweb.llm.scripted_server import Broken, Delayed, ServerError, ServerReply
from personaweb.personas import DelegatingPersona, ResponseDrivenPersona

Target = Literal["line", "decision", "prepass"]
Outcome = Literal["failure", "truncated", "reply"]

# --- the faults --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Fault:
    """One way the server answers the targeted persona's calls while the fault is on."""

    name: str
    """The test id."""
    target: Target
    """Whose calls it hits: a character's spoken line (streamed free text), its
    orchestrator's decision (a structured call), or a group's pre-pass (structured too)."""
    answer: Callable[[str], ServerReply]
    """The faulty answer, made from what the server would have said."""
    outcome: Outcome
    """What a person must see: a failed node, a truncated reply, or a normal reply."""
    says: str = ""
    """Part of the failed node's reason."""
    times: int | None = None
    """How many calls it hits (None: every call until it is cleared)."""
    deadline_s: float = 30.0
    """The targeted persona's deadline (LLMProfile.timeout_s)."""
    partial: bool = False
    """Whether the server said something before it failed (kept on the failed call, for a
    person to inspect)."""


def not_json(_text: str) -> str:
    return "Sure! I'd delegate to the responder {action: delegate"


FAULTS = [
    # Streamed free text: the character's line.
    Fault(
        "reset-mid-stream",
        "line",
        lambda t: Broken(t, cut_after=2, cut="reset"),
        "failure",
        "stream broke off",
        partial=True,
    ),
    Fault(
        "garbled-event",
        "line",
        lambda t: Broken(t, cut_after=2, cut="garble"),
        "failure",
        "stream broke off",
        partial=True,
    ),
    Fault(
        "cut-before-done",
        "line",
        lambda t: Broken(t, cut_after=10_000),
        "failure",
        "no finish reason",
        partial=True,
    ),
    Fault(
        "no-finish-reason",
        "line",
        lambda t: Broken(t, finish=None),
        "failure",
        "no finish reason",
        partial=True,
    ),
    Fault("finish-length", "line", lambda t: Broken(t, finish="length"), "truncated"),
    Fault(
        "429-retry-after",
        "line",
        lambda t: ServerError(429, headers={"Retry-After": "2"}),
        "failure",
        "HTTP 429",
    ),
    Fault("500", "line", lambda t: ServerError(500), "failure", "HTTP 500"),
    Fault("500-once", "line", lambda t: ServerError(500), "reply", times=1),
    Fault("no-usage", "line", lambda t: Broken(t, usage=False), "reply"),
    Fault("slow-first-token", "line", lambda t: Delayed(0.2, t), "reply"),
    Fault(
        "first-token-past-deadline",
        "line",
        lambda t: Delayed(2.5, t),
        "failure",
        "LLMTimeout",
        deadline_s=1.0,
    ),
    # Structured calls: the orchestrator's decision.
    Fault(
        "reset-mid-body",
        "decision",
        lambda t: Broken(t, cut_after=1, cut="reset"),
        "failure",
        "LLMUnavailable",
    ),
    Fault(
        "body-cut-short",
        "decision",
        lambda t: Broken(t, cut_after=1),
        "failure",
        "LLMUnavailable",
    ),
    Fault(
        "invalid-json",
        "decision",
        not_json,
        "failure",
        "no valid decision after 3",
        partial=True,
    ),
    Fault("invalid-json-once", "decision", not_json, "reply", times=1),
    Fault(
        "429-retry-after",
        "decision",
        lambda t: ServerError(429, headers={"Retry-After": "2"}),
        "failure",
        "HTTP 429",
    ),
    Fault("429-once", "decision", lambda t: ServerError(429), "reply", times=1),
    Fault("500", "decision", lambda t: ServerError(500), "failure", "HTTP 500"),
    # A whole JSON body is judged by validation, whether or not a finish reason came with it.
    Fault("no-finish-reason", "decision", lambda t: Broken(t, finish=None), "reply"),
    Fault("no-usage", "decision", lambda t: Broken(t, usage=False), "reply"),
    Fault("slow-first-token", "decision", lambda t: Delayed(0.2, t), "reply", times=1),
    Fault(
        "first-token-past-deadline",
        "decision",
        lambda t: Delayed(2.5, t),
        "failure",
        "LLMTimeout",
        deadline_s=1.0,
    ),
]


def hits(target: Target, body: dict[str, Any]) -> bool:
    """Whether a request is one of the target's calls (told apart by their system prompts)."""
    system = str(body["messages"][0]["content"])
    if target == "line":
        return bool(body.get("stream")) and not system.startswith("You rewrite")
    if target == "prepass":
        return system.startswith("You are the judgement of")
    return "response_format" in body and system.startswith("You produce")


def targeted(persona: ResponseDrivenPersona, target: Target) -> bool:
    """Whether a persona makes the target's calls."""
    if target == "line":
        return persona.name == "responder"
    return target == "decision" and isinstance(persona, DelegatingPersona)


class FaultyLLM:
    """Plays a hierarchy with `play`; while a fault is on, the target's calls meet it."""

    def __init__(self, play: Callable[[dict[str, Any]], str]) -> None:
        self.play = play
        self.fault: Fault | None = None
        self.hits = 0
        """Calls the fault answered."""
        self._lock = threading.Lock()  # a group's pre-passes arrive together

    def __call__(self, body: dict[str, Any]) -> ServerReply:
        normal = self.play(body)
        fault = self.fault
        if fault is None or not hits(fault.target, body):
            return normal
        with self._lock:
            if fault.times is not None and self.hits >= fault.times:
                return normal
            self.hits += 1
        return fault.answer(normal)


def fault(name: str) -> Fault:
    """A fault of FAULTS by its test id, e.g. "line-reset-mid-stream"."""
    return next(f for f in FAULTS if f"{f.target}-{f.name}" == name)
