"""What a person can do to a session: one function per action, for the pages and the JSON API
alike (two front ends, one implementation).

Every action checks its input before it answers: a refusal is `Refused` with the HTTP status
it means (400 bad input, 404 no such node, 409 the node or session cannot do that now) and a
plain sentence. An action that needs the model starts a run and returns at once with its Run;
the run's steps reach browsers as live frames and API clients as events. Ownership is the
caller's business: these take a session the person owns (and `create_session` the person's
own characters only: another's is refused as missing).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.db import transaction

from personaweb.cast import sessions as card_sessions
from personaweb.llm.types import LLMProfile
from personaweb.personas import Action, ActionRefused, Engine, Node, build_hierarchy
from personaweb.personas.engine import MAX_INPUT_CHARS, allowed_actions
from personaweb.web import building, runs
from personaweb.web.group_forms import GroupChatForm
from personaweb.web.ids import parse_pk
from personaweb.web.models import (
    Annotation,
    Character,
    ChatSession,
    Hierarchy,
    Mode,
    NodeRow,
    Run,
    Strategy,
)
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


# --- new sessions ------------------------------------------------------------------------------
# The home page's form and the API's JSON both arrive here as form fields: `hierarchy`,
# `strategy`, `mode`, `guided`, `character`, `title`, `model:<persona path>` and
# `temperature:<persona path>`, and the card choices (`user_name`, `greeting`, `lorebooks`).


def flag(post: Any, name: str, default: bool = True) -> bool:
    """A checkbox sent with a hidden "off" before it: the last value wins; absent: default."""
    values = (
        post.getlist(name) if hasattr(post, "getlist") else [post[name]] if name in post else []
    )
    return default if not values else str(values[-1]) in ("on", "1", "true", "True", "yes")


def session_kind(data: Mapping[str, Any]) -> tuple[str, str] | None:
    """(hierarchy, strategy) of a new dialogue or code session, or None if either is unknown."""
    hierarchy = data.get("hierarchy", Hierarchy.DIALOGUE)
    strategy = data.get("strategy", Strategy.NESTED)
    if hierarchy not in (Hierarchy.DIALOGUE, Hierarchy.CODE) or strategy not in Strategy.values:
        return None
    return hierarchy, strategy


def persona_infos(hierarchy: str, strategy: str = "nested") -> list[dict[str, Any]]:
    """The personas a new session of this kind will have (for its model/temperature fields)."""
    if hierarchy == "dialogue":
        root = build_hierarchy("dialogue", character={"name": "Character"}, strategy=strategy)
    else:
        root = build_hierarchy(hierarchy)
    return [{"depth": d, "info": info} for d, info in root.describe().walk()]


def _profiles(data: Mapping[str, Any], hierarchy: str, strategy: str) -> dict[str, dict]:
    """The session's LLM profiles: only those that differ from the personas' defaults."""
    profiles = {}
    for item in persona_infos(hierarchy, strategy):
        info = item["info"]
        if info.role_kind == "code":
            continue
        model = str(data.get(f"model:{info.path}", "")).strip()[:200]
        raw_t = str(data.get(f"temperature:{info.path}", "")).strip()
        try:
            temperature = float(raw_t) if raw_t else info.profile.temperature
        except ValueError:
            raise Refused(f"temperature for {info.path} must be a number", 400) from None
        if not 0 <= temperature <= 2:  # also refuses NaN
            raise Refused(f"temperature for {info.path} must be between 0 and 2", 400)
        if model != info.profile.model or temperature != info.profile.temperature:
            profile = LLMProfile(
                model=model,
                temperature=temperature,
                max_tokens=info.profile.max_tokens,
                timeout_s=info.profile.timeout_s,
            )
            profiles[info.path] = profile.to_dict()
    return profiles


def create_session(owner: User, data: Mapping[str, Any]) -> ChatSession:
    """A new dialogue or code session of `owner`'s, opened with its character's greeting."""
    kind = session_kind(data)
    mode = data.get("mode", Mode.REVIEW)
    if kind is None:
        raise Refused("unknown hierarchy or strategy", 400)
    hierarchy, strategy = kind
    if mode not in Mode.values:
        raise Refused(f"unknown mode {mode!r}", 400)
    character = None
    if data.get("character"):
        if (character_pk := parse_pk(data["character"])) is None:
            raise Refused("unknown character", 400)
        character = Character.objects.filter(pk=character_pk, owner=owner).first()
        if character is None:
            raise Refused("no such character", 404)
    if hierarchy == Hierarchy.DIALOGUE and character is None:
        raise Refused("a dialogue session needs a character", 400)
    profiles = _profiles(data, hierarchy, strategy)
    # The card side of the form: the person's name, the greeting, session lorebooks.
    cast = [character] if character is not None and hierarchy == Hierarchy.DIALOGUE else []
    try:
        choices = card_sessions.read_choices(data, owner, cast, group=False)
    except ValueError as exc:
        raise Refused(str(exc), 400) from None
    title = str(data.get("title", "")).strip()[:200]
    if not title:
        title = f"{character.name} · {hierarchy}" if character else f"{hierarchy} session"
    with transaction.atomic():
        session = ChatSession.objects.create(
            owner=owner,
            title=title,
            character=character if hierarchy == Hierarchy.DIALOGUE else None,
            hierarchy=hierarchy,
            strategy=strategy,
            mode=mode,
            guided=flag(data, "guided"),
            profiles=profiles,
        )
        if session.character is not None:
            card_sessions.start(session, choices, building.hierarchy_for(session))
    return session


def create_group(owner: User, form: GroupChatForm) -> ChatSession:
    """A new group chat from a valid GroupChatForm, opened with its members' greetings."""
    members = form.cleaned_data["members"]
    title = form.cleaned_data["title"].strip() or "Group: " + ", ".join(m.name for m in members)
    with transaction.atomic():
        session = ChatSession.objects.create(
            owner=owner,
            title=title[:200],
            hierarchy=Hierarchy.GROUP,
            strategy=form.cleaned_data["strategy"],
            mode=form.cleaned_data["mode"],
            members=[m.pk for m in members],
            group_settings=form.group_settings(),
            profiles=form.profiles(),
        )
        # Each member's chosen greeting opens the chat; the person's name; lorebooks.
        card_sessions.start(
            session, form.cleaned_data["card_choices"], building.hierarchy_for(session)
        )
    return session


def delete_session(session: ChatSession) -> None:
    """Delete a session and its tree (refused while a run is going)."""
    if runs.is_running(session.pk):
        raise Refused("stop the run before deleting the session")
    session.delete()


# --- messages ----------------------------------------------------------------------------------


async def send(session: ChatSession, text: str, *, speaker: str = "") -> Run:
    """A message from the person to the session's top persona, under the active branch."""
    text = _text(text.strip(), "message", required=True)
    try:
        # A group chat in manual order: the person picks who speaks next.
        data = await sync_to_async(building.kind_of(session).message_data)(session, speaker)
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

    # The engine records each of these on the node, with who did it (data["human"]): that is
    # how training data tells a person's approval from a run's own (records.py).
    async def approve(engine: Engine) -> Node:
        return await engine.approve(node_id)

    async def reject(engine: Engine) -> Node:
        return await engine.reject(node_id)

    if action == "approve_turn":

        async def rest_of_turn(engine: Engine, approved: Node) -> Node:
            return await engine.advance(approved.id, stop=False)

        return await _start(session, action, approve, rest_of_turn, actor)

    firsts = {
        "approve": approve,
        "reject": reject,
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
