"""Delegating personas: an LLM orchestrator that picks a child, and code-managed coordinators.

An LLM orchestrator may declare a **plan**: the moves its hierarchy expects, step by step
(e.g. consult the responder, then the style rewriter, then reply with the rewritten line).
When the session is guided, the decision schema offered at each step admits only the moves
the plan allows there; the model still writes every decision, and where a step leaves a
choice, the model makes it. Small models, which otherwise answer the user directly, then
nest as intended. The plan reads its position off the activation's events, so it follows
whatever really happened:

- each applied delegation must match the plan's step at its place; then the next step is
  offered;
- a child that passes leaves only the plan's `after_pass` moves;
- feedback from a person, a history that left the plan (a person's edit re-routed a step),
  or a plan run to its end: every move is offered, as without a plan.
"""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from personaweb.llm.schema import validate
from personaweb.llm.types import CallRecord, ChatMessage, LLMProfile
from personaweb.personas.persona import ProposeContext, ResponseDrivenPersona, render_events
from personaweb.personas.proposal import ProposedResponse
from personaweb.personas.state import Event, EventKind
from personaweb.personas.tree import Action

MAX_MESSAGE_CHARS = 8000
CALLER = "caller"
INBOUND = "inbound"
"""A Move's `relay` naming the message this activation received."""


@dataclass(frozen=True)
class Move:
    """One decision a plan allows."""

    action: Action
    """delegate, reply or pass."""
    to: str | None = None
    """For delegate: the child."""
    relay: str | None = None
    """When set, the message must be a text already on the path, passed on unchanged: the
    activation's inbound message (INBOUND) or the latest reply of the named child."""

    @property
    def label(self) -> str:
        if self.action is Action.DELEGATE:
            return f"delegate to {self.to}"
        return self.action.value

    def fits(self, action: Action, target: str | None) -> bool:
        return self.action is action and (action is not Action.DELEGATE or self.to == target)


@dataclass(frozen=True)
class Plan:
    """The moves a delegating persona's hierarchy expects, one tuple of choices per step."""

    steps: tuple[tuple[Move, ...], ...]
    """Step i offers the moves steps[i]; the model picks one of them."""
    after_pass: tuple[Move, ...] = ()
    """What is offered once a child chose not to answer (nothing given: every move)."""

    def offered(self, turn: Sequence[Event]) -> tuple[Move, ...] | None:
        """The moves allowed next in this activation (`turn`), or None: off the plan, so
        every move is allowed (see the module's rules)."""
        own: list[Event] = []
        for event in turn:
            if event.kind is EventKind.FEEDBACK:
                return None
            if event.kind is EventKind.OWN:
                own.append(event)
            if event.kind is EventKind.OWN and event.action is not Action.DELEGATE:
                return None
        if any(e.kind is EventKind.FEEDBACK for e in turn):
            return None
        results = [e for e in turn if e.kind is EventKind.CHILD_RESULT]
        if results and results[-1].action is Action.PASS and self.after_pass:
            return self.after_pass
        for step, event in zip(self.steps, own, strict=False):
            if not any(move.fits(Action.DELEGATE, event.target) for move in step):
                return None
        if len(own) >= len(self.steps):
            return None
        return self.steps[len(own)]


def relayed_text(move: Move, turn: Sequence[Event]) -> str | None:
    """The text a relaying move must carry, or None if there is none on the path."""
    if move.relay is None:
        return None
    if move.relay == INBOUND:
        inbound = next((e for e in turn if e.kind is EventKind.INBOUND), None)
        return inbound.text if inbound else None
    for event in reversed(turn):
        if event.kind is EventKind.CHILD_RESULT and event.target == move.relay:
            return event.text if event.action is Action.REPLY else None
    return None


def decision_schema(
    children: Sequence[str],
    *,
    allow_pass: bool = False,
    moves: Sequence[Move] | None = None,
    turn: Sequence[Event] = (),
) -> dict[str, Any]:
    """JSON schema of an orchestrator's choice. Child names are an enum, so servers that
    constrain output to the schema can only name real children. With `moves` (a plan's step)
    only those actions, targets and relayed messages are admitted; combinations the schema
    cannot tie together are checked by `check_move`."""
    actions = ["delegate", "reply"] + (["pass"] if allow_pass else [])
    targets = [*children, CALLER]
    message: dict[str, Any] = {"type": "string", "minLength": 1, "maxLength": MAX_MESSAGE_CHARS}
    if moves:
        actions = list(dict.fromkeys(m.action.value for m in moves))
        targets = list(
            dict.fromkeys(m.to if m.action is Action.DELEGATE and m.to else CALLER for m in moves)
        )
        relayed = [relayed_text(m, turn) for m in moves]
        if all(text for text in relayed):
            message = {"type": "string", "enum": list(dict.fromkeys(t for t in relayed if t))}
    return {
        "type": "object",
        "properties": {
            "action": {"type": "string", "enum": actions},
            "to": {"type": "string", "enum": targets},
            "message": message,
        },
        "required": ["action", "to", "message"],
        "additionalProperties": False,
    }


class DelegatingPersona(ResponseDrivenPersona):
    """An LLM orchestrator: told its children's names and descriptions, it answers with a JSON
    decision (validated against a schema) to delegate a message to one child or reply to its
    caller. Invalid decisions are re-asked with the error, a bounded number of times."""

    role_kind: ClassVar[str] = "delegating"

    def __init__(
        self,
        name: str,
        *,
        instructions: str,
        children: Sequence[ResponseDrivenPersona],
        description: str = "",
        profile: LLMProfile | None = None,
        max_attempts: int = 3,
        allow_pass: bool = False,
        display_name: str = "",
        plan: Plan | None = None,
    ) -> None:
        if not children:
            raise ValueError(f"delegating persona {name!r} needs at least one child")
        super().__init__(
            name,
            description=description,
            profile=profile,
            children=children,
            display_name=display_name,
        )
        self.instructions = instructions
        self.max_attempts = max(1, max_attempts)
        self.allow_pass = allow_pass
        self.plan = plan
        """The moves this persona's hierarchy expects; used when the session is guided."""
        if plan is not None:
            for step in (*plan.steps, plan.after_pass):
                for move in step:
                    if move.action is Action.DELEGATE and move.to not in self.children:
                        raise ValueError(f"{name}'s plan names an unknown child {move.to!r}")

    @property
    def schema(self) -> dict[str, Any]:
        return decision_schema(list(self.children), allow_pass=self.allow_pass)

    def offered(self, ctx: ProposeContext) -> tuple[Move, ...] | None:
        """The moves the plan allows now, or None when every move is allowed."""
        if self.plan is None or not ctx.guided:
            return None
        return self.plan.offered(ctx.current)

    def system_prompt(self) -> str:
        roster = "\n".join(
            f"- {child.name}: {child.description or 'no description'}"
            for child in self.children.values()
        )
        choices = '"delegate" or "reply"' + (' or "pass"' if self.allow_pass else "")
        return (
            f"{self.instructions}\n\n"
            f"You coordinate these helpers:\n{roster}\n\n"
            "Each turn, answer with one JSON object and nothing else:\n"
            f'{{"action": {choices}, "to": <helper name, or "{CALLER}" when replying>, '
            '"message": <text>}\n'
            "To delegate, name one helper and write the message it should work on. "
            "When you have what you need, reply to your caller with the final text."
        )

    def build_messages(self, events: Sequence[Event]) -> list[ChatMessage]:
        rest = render_events(events, _render_coordinator_event)
        return [ChatMessage("system", self.system_prompt()), *rest]

    def check(self, value: Any, moves: Sequence[Move] | None = None) -> list[str]:
        """Errors beyond the schema: a delegation must name a real child, and under a plan
        the action and the helper must be one of the offered moves."""
        errors = validate(value, self.schema)
        if errors:
            return errors
        action, to = Action(value["action"]), value["to"]
        if action is Action.DELEGATE and to not in self.children:
            names = ", ".join(self.children)
            errors.append(f"'to' must name one of your helpers ({names}) when delegating")
        elif moves and not any(m.fits(action, to) for m in moves):
            labels = " or ".join(m.label for m in moves)
            errors.append(f"at this step the plan allows only: {labels}")
        return errors

    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        events = ctx.current if self.stateless else ctx.history
        moves = self.offered(ctx)
        schema = decision_schema(
            list(self.children), allow_pass=self.allow_pass, moves=moves, turn=ctx.current
        )
        messages = self.build_messages(events)
        if moves:
            labels = " or ".join(m.label for m in moves)
            messages.append(ChatMessage("system", f"Your next step: {labels}."))

        def check(value: Any) -> list[str]:
            return validate(value, schema) or self.check(value, moves)

        answer = await ctx.ask(
            messages,
            self.profile,
            schema,
            check=check,
            max_attempts=self.max_attempts,
            schema_name="decision",
            what="decision",
        )
        proposal = self._proposal(ctx.persona, answer.value, answer.record)
        if self.plan is not None:
            offered = [m.label for m in moves] if moves else ["any move"]
            guide = "guided" if ctx.guided else "not guided"
            proposal.data.update(
                offered=offered, plan=guide if moves or not ctx.guided else "off plan"
            )
        return proposal

    def _proposal(self, persona: str, value: dict[str, Any], call: CallRecord) -> ProposedResponse:
        action = Action(value["action"])
        if action is Action.DELEGATE:
            return ProposedResponse(
                persona, action, value["message"], target=value["to"], call=call
            )
        if action is Action.PASS:
            return ProposedResponse(persona, action, "", call=call)
        return ProposedResponse(persona, action, value["message"], call=call)


def _decision_json(event: Event) -> str:
    action = event.action.value if event.action else "reply"
    to = event.target if event.action is Action.DELEGATE and event.target else CALLER
    return json.dumps({"action": action, "to": to, "message": event.text}, ensure_ascii=False)


def _render_coordinator_event(event: Event) -> list[ChatMessage]:
    if event.kind is EventKind.INBOUND:
        sender = event.sender.rpartition("/")[2] or "user"
        return [ChatMessage("user", f"Message from {sender}: {event.text}")]
    if event.kind in (EventKind.OWN, EventKind.SUPERSEDED):
        return [ChatMessage("assistant", _decision_json(event))]
    if event.kind is EventKind.REJECTED:
        return [
            ChatMessage("assistant", _decision_json(event)),
            ChatMessage("user", "A reviewer rejected that decision. Decide differently."),
        ]
    if event.kind is EventKind.FEEDBACK:
        return [ChatMessage("user", f"Reviewer feedback on your last decision: {event.text}")]
    if event.kind is EventKind.CHILD_RESULT:
        if event.action is Action.PASS:
            return [ChatMessage("user", f"{event.target} chose not to answer.")]
        return [ChatMessage("user", f"Reply from {event.target}: {event.text}")]
    return []


class CodePersona(ResponseDrivenPersona):
    """A coordinator whose control flow is Python, not an LLM's choice.

    It uses the same proposal protocol (delegate / reply / pass), so its steps show in the tree
    and can be reviewed like any other. Feedback on one of its proposals is appended to the
    message it sends next, since code cannot reinterpret free text.
    """

    role_kind: ClassVar[str] = "code"

    @abstractmethod
    def decide(self, turn: list[Event], history: Sequence[Event]) -> ProposedResponse:
        """The next proposal from the events of the current activation (and all history)."""

    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        turn = [e for e in ctx.current if e.kind is not EventKind.FEEDBACK]
        feedback = _pending_feedback(ctx.current)
        proposal = self.decide(_without_superseded(turn), ctx.history)
        if feedback and proposal.action is not Action.PASS:
            content = f"{proposal.content}\n\n(Reviewer note: {feedback})"
            return ProposedResponse(
                proposal.persona, proposal.action, content, proposal.target, None, proposal.data
            )
        return proposal


def _pending_feedback(events: Sequence[Event]) -> str:
    """Feedback given since the persona's last applied proposal."""
    notes: list[str] = []
    for event in events:
        if event.kind is EventKind.OWN:
            notes = []
        elif event.kind is EventKind.FEEDBACK:
            notes.append(event.text)
    return " ".join(notes)


def _without_superseded(events: list[Event]) -> list[Event]:
    return [e for e in events if e.kind not in (EventKind.SUPERSEDED, EventKind.REJECTED)]


def last_child_result(turn: list[Event]) -> Event | None:
    """The newest child result of this activation, if it came after the last own proposal."""
    for event in reversed(turn):
        if event.kind is EventKind.CHILD_RESULT:
            return event
        if event.kind is EventKind.OWN:
            return None
    return None


class SequencePersona(CodePersona):
    """Sends the inbound message through its children in order, each getting the previous
    one's reply, and replies to its caller with the last reply."""

    def __init__(
        self,
        name: str,
        *,
        children: Sequence[ResponseDrivenPersona],
        description: str = "",
        compose: Callable[[str, list[Event]], str] | None = None,
        display_name: str = "",
    ) -> None:
        super().__init__(
            name, description=description, children=children, display_name=display_name
        )
        self.order = [c.name for c in children]
        self.compose = compose

    def decide(self, turn: list[Event], history: Sequence[Event]) -> ProposedResponse:
        inbound = next(e for e in turn if e.kind is EventKind.INBOUND)
        done = [e for e in turn if e.kind is EventKind.CHILD_RESULT]
        if len(done) >= len(self.order):
            return ProposedResponse(self.path, Action.REPLY, done[-1].text)
        target = self.order[len(done)]
        text = done[-1].text if done else inbound.text
        message = self.compose(target, turn) if self.compose else text
        return ProposedResponse(self.path, Action.DELEGATE, message, target=target)


class LoopPersona(CodePersona):
    """Alternates a worker and a checker until the checker approves or rounds run out.

    The checker approves by starting its reply with the word in `approve_word`; otherwise its
    reply goes back to the worker as the next instruction."""

    def __init__(
        self,
        name: str,
        *,
        worker: ResponseDrivenPersona,
        checker: ResponseDrivenPersona,
        max_rounds: int = 3,
        approve_word: str = "APPROVED",
        description: str = "",
        display_name: str = "",
    ) -> None:
        super().__init__(
            name, description=description, children=[worker, checker], display_name=display_name
        )
        self.worker = worker.name
        self.checker = checker.name
        self.max_rounds = max_rounds
        self.approve_word = approve_word

    def decide(self, turn: list[Event], history: Sequence[Event]) -> ProposedResponse:
        inbound = next(e for e in turn if e.kind is EventKind.INBOUND)
        results = [e for e in turn if e.kind is EventKind.CHILD_RESULT]
        work = [e for e in results if e.target == self.worker]
        checks = [e for e in results if e.target == self.checker]
        if not results:
            return ProposedResponse(self.path, Action.DELEGATE, inbound.text, target=self.worker)
        latest = results[-1]
        if latest.target == self.worker:
            message = f"Task: {inbound.text}\n\nCandidate:\n{latest.text}"
            return ProposedResponse(self.path, Action.DELEGATE, message, target=self.checker)
        verdict = latest.text.strip()
        approved = verdict.upper().startswith(self.approve_word)
        if approved or len(checks) >= self.max_rounds:
            data = {"rounds": len(checks), "approved": approved}
            # A person may have sent the task straight to the checker: then there is no work.
            answer = work[-1].text if work else verdict
            return ProposedResponse(self.path, Action.REPLY, answer, data=data)
        message = f"Task: {inbound.text}\n\nRevise your last answer. Checker said:\n{verdict}"
        return ProposedResponse(self.path, Action.DELEGATE, message, target=self.worker)
