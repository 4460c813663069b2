"""What a person can do to a session: one function per action, for the pages and the JSON API
alike (two front ends, one implementation).

Every action checks its input before it answers: a refusal is `Refused` with the HTTP status
it means (400 bad input, 404 no such node, 409 the node or session cannot do that now) and a
plain sentence. An action that needs the model starts a run and returns at once with its Run;
the run's steps reach browsers as live frames and API clients as events. Ownership is the
caller's business: these take a session the person owns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User

from personaweb.personas import Action, ActionRefused, Engine, Node
from personaweb.personas.engine import MAX_INPUT_CHARS, allowed_actions
from personaweb.web import building, groups, runs
from personaweb.web.models import Annotation, ChatSession, Mode, NodeRow, Run
from personaweb.web.store import load_node, load_tree

NODE_ACTIONS = (
    "approve",
    "approve_turn",
    "reject",
    "feedback",
    "edit",
    "branch",
    "retry",
    "continue",
)
"""What a person can do to a node. approve_turn approves the node and the rest of its turn;
the engine's allowed_actions decides which apply to which node."""
MAX_LABEL_CHARS = 60


class Refused(Exception):
    """An action that cannot happen, and why."""

    def __init__(self, message: str, status: int = 409) -> None:
        super().__init__(message)
        self.message = message
        """A plain sentence for the person (never HTML)."""
        self.status = status
        """400 bad input, 404 nothing there, 409 not now."""


@dataclass(frozen=True)
class Route:
    """Where an edited proposal goes: its own action and target, or another."""

    action: Action | None = None
    target: str | None = None

    @classmethod
    def parse(cls, raw: str) -> Route:
        """ "" keeps the proposal's; "reply" answers the caller; "delegate:<child>"."""
        if not raw:
            return cls()
        if raw == "reply":
            return cls(Action.REPLY)
        if raw.startswith("delegate:") and raw.partition(":")[2]:
            return cls(Action.DELEGATE, raw.partition(":")[2])
        raise Refused(f"unknown route {raw!r}", 400)


def _text(value: str, what: str, *, required: bool) -> str:
    if len(value) > MAX_INPUT_CHARS:
        raise Refused(f"the {what} is too long (at most {MAX_INPUT_CHARS:,} characters)", 400)
    if required and not value.strip():
        raise Refused(f"the {what} is empty", 400)
    return value


async def _start(
    session: ChatSession, trigger: str, first: runs.First, job: runs.Job, actor: str = ""
) -> Run:
    try:
        return await runs.start(session, trigger, job, first=first, actor=actor)
    except runs.RunBusy as exc:
        raise Refused(str(exc)) from None
    except ActionRefused as exc:
        raise Refused(str(exc)) from None


async def _advance(engine: Engine, leaf: Node) -> Node:
    return await engine.advance(leaf.id)


# --- messages ----------------------------------------------------------------------------------


async def send(session: ChatSession, text: str, *, speaker: str = "") -> Run:
    """A message from the person to the session's top persona, under the active branch."""
    text = _text(text.strip(), "message", required=True)
    try:
        # A group chat in manual order: the person picks who speaks next.
        data = await sync_to_async(groups.speaker_data)(session, speaker)
    except ValueError as exc:
        raise Refused(str(exc), 400) from None
    tree = await sync_to_async(load_tree)(session)
    parent = tree.active_leaf(session.active_node) or None

    async def first(engine: Engine) -> Node:
        return await engine.send(text, parent, data)

    return await _start(session, "send", first, _advance)


# --- a node ------------------------------------------------------------------------------------


async def act(
    session: ChatSession,
    node_id: str,
    action: str,
    *,
    text: str = "",
    content: str = "",
    route: str = "",
    actor: str = "",
) -> Run:
    """Do `action` to a node (see NODE_ACTIONS): `text` is feedback (also for branch),
    `content` an edit, `route` where an edit sends the proposal. `actor`: the person's user
    name, recorded on the node with what they did."""
    if action not in NODE_ACTIONS:
        raise Refused(f"no such action {action!r}", 404)
    loaded = await sync_to_async(load_node)(session.pk, node_id)
    if loaded is None:
        raise Refused("no such node", 404)
    node, has_children = loaded
    # The rule the engine applies: a forced post of a disabled button stops here.
    needs = "approve" if action == "approve_turn" else action
    if needs not in allowed_actions(node, has_children):
        detail = " and already has replies" if has_children else ""
        raise Refused(
            f"cannot {action} this {node.kind.value} node: it is {node.status.value}{detail}"
        )
    text = _text(text.strip(), "feedback", required=action == "feedback")
    content = _text(
        content, "edited content", required=action == "edit" and node.action is not Action.PASS
    )
    where = Route.parse(route)

    if action == "approve_turn":

        async def rest_of_turn(engine: Engine, approved: Node) -> Node:
            return await engine.advance(approved.id, stop=False)

        return await _start(session, action, lambda e: e.approve(node_id), rest_of_turn, actor)

    firsts = {
        "approve": lambda e: e.approve(node_id),
        "reject": lambda e: e.reject(node_id),
        "feedback": lambda e: e.feedback(node_id, text),
        "edit": lambda e: e.edit(node_id, content, where.action, where.target),
    }
    if action in firsts:
        return await _start(session, action, firsts[action], _advance, actor)

    # branch, retry and continue call the model at once, so that happens in the run; what
    # would refuse them is checked first, so the refusal reaches the caller.
    async def check(engine: Engine) -> None:
        if action == "branch":
            await engine.check_branch(node_id, text or None)
        elif action == "continue":
            await engine.check_continue(node_id)
        else:
            await engine.check_retry(node_id)

    async def replay(engine: Engine, _none: None) -> Node:
        if action == "branch":
            new = await engine.branch(node_id, text or None)
        elif action == "continue":
            new = await engine.continue_reply(node_id)
        else:
            new = await engine.retry(node_id)
        return await engine.advance(new.id)

    return await _start(session, action, check, replay, actor)


async def stop(session: ChatSession) -> None:
    """Stop the session's run, wherever it runs."""
    if not await runs.stop(session.pk):
        raise Refused("no run in progress")


# --- settings and notes ------------------------------------------------------------------------


def set_mode(
    session: ChatSession, mode: str, breakpoints: list[str], guided: bool | None = None
) -> None:
    """How runs proceed: autonomous, review, or breakpoints at the chosen personas (unknown
    persona paths are dropped); `guided` (None: unchanged) offers orchestrators their plans."""
    if mode not in Mode.values:
        raise Refused(f"unknown mode {mode!r}", 400)
    known = {info.path for _, info in building.hierarchy_for(session).describe().walk()}
    session.mode = mode
    session.breakpoints = [p for p in breakpoints if p in known]
    if guided is not None:
        session.guided = guided
    session.save(update_fields=["mode", "breakpoints", "guided", "updated_at"])


def annotate(
    session: ChatSession,
    node_id: str,
    author: User,
    *,
    text: str = "",
    label: str = "",
    score: str | float | None = None,
) -> Annotation:
    """A person's note on a node: text, a label, a score (any of them, at least one)."""
    node = NodeRow.objects.filter(session=session, pk=node_id).first()
    if node is None:
        raise Refused("no such node", 404)
    text = _text(text.strip(), "note", required=False)
    label = label.strip()[:MAX_LABEL_CHARS]
    value: float | None = None
    if score not in (None, ""):
        try:
            value = float(score)
        except (TypeError, ValueError):
            raise Refused("the score must be a number", 400) from None
        if not math.isfinite(value):
            raise Refused("the score must be a finite number", 400)
    if not (text or label or value is not None):
        raise Refused("an annotation needs a note, a label or a score", 400)
    return Annotation.objects.create(node=node, author=author, text=text, label=label, score=value)
