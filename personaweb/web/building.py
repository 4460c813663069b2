"""What a session runs: its persona hierarchy, run configuration and engine, built from rows.

What differs between the kinds of session (a character's dialogue, the code team, a group
chat) is stated once, in one `Kind` per hierarchy; everything else asks the session's kind:
how its persona tree is built, how many steps a turn may take, who directs it, what a user
message carries, and the panes of its own (a group chat's heat and policy costs).

LLM profiles come in two layers, applied in this order by `apply_profiles`:
1. a character's own defaults (its sheet's `profiles`, by role), as its card or the character
   page set them; an endpoint (`base_url`) there is used only once its owner confirmed it on
   the character page (`Character.confirmed_endpoints`, kept beside the sheet so that no card
   or session file can carry a confirmation), because a card from a stranger must never make
   the server call a host the user did not choose;
2. the session's choices (by persona path), made when it was created.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

from personaweb.cast.sessions import SessionCards
from personaweb.llm import build_chat_model, endpoint_from_env
from personaweb.llm.types import ChatModel, LLMProfile
from personaweb.personas import (
    Engine,
    Mode,
    Observer,
    ResponseDrivenPersona,
    RunConfig,
    build_hierarchy,
)
from personaweb.personas.group import (
    DIRECTOR,
    GROUP_MAX_STEPS,
    BackgroundRatings,
    group_hierarchy,
    group_settings_from_dict,
)
from personaweb.personas.persona import PersonaInfo, apply_profiles
from personaweb.personas.state import PathWalk, TranscriptLine
from personaweb.personas.tree import Node
from personaweb.web import groups
from personaweb.web.models import Character, ChatSession, Hierarchy, Strategy
from personaweb.web.store import OrmStore


def character_profiles(character: Character) -> dict[str, LLMProfile]:
    """A character's own profile defaults, by role. An endpoint its owner has not confirmed
    (`Character.confirmed_endpoints`) is dropped: that role then uses the session's default
    endpoint."""
    confirmed = set(character.confirmed_endpoints or [])
    out: dict[str, LLMProfile] = {}
    for role, raw in dict((character.data or {}).get("profiles") or {}).items():
        if not isinstance(raw, Mapping):
            continue
        try:
            profile = LLMProfile.from_dict(dict(raw))
        except (TypeError, ValueError):
            continue
        if profile.base_url and profile.base_url not in confirmed:
            profile = replace(profile, base_url=None)
        out[str(role)] = profile
    return out


def character_strategy(character: Character | None) -> str:
    """The strategy a character's sheet asks for: new sessions with it start with this one."""
    strategy = (character.data or {}).get("strategy") if character is not None else None
    return strategy if strategy in Strategy.values else Strategy.NESTED


def unconfirmed_endpoints(character: Character) -> list[str]:
    """Endpoints a character's profiles name that its owner has not confirmed."""
    confirmed = set(character.confirmed_endpoints or [])
    urls: list[str] = []
    for raw in dict((character.data or {}).get("profiles") or {}).values():
        url = raw.get("base_url") if isinstance(raw, Mapping) else None
        if url and url not in confirmed and url not in urls:
            urls.append(str(url))
    return urls


def session_profiles(session: ChatSession) -> dict[str, LLMProfile]:
    """The session's own choices, by persona path."""
    return {path: LLMProfile.from_dict(p) for path, p in (session.profiles or {}).items()}


@dataclass(frozen=True)
class Kind(ABC):
    """What differs between the kinds of session."""

    hierarchy: str
    """The ChatSession.hierarchy value."""
    max_steps: int = RunConfig.max_steps
    """Most nodes one user message may create."""
    director: str = ""
    """The top persona's path when it only directs others (a group chat), else ''. Its pass
    reads as nobody (else) speaking."""
    own_panes: bool = False
    """Whether it has panes of its own (`view`). They read the whole active path with its
    calls, and change with its decision nodes and at the end of each run."""

    @abstractmethod
    def build(self, session: ChatSession) -> ResponseDrivenPersona:
        """The session's persona tree, with its profiles applied."""

    def view(
        self,
        session: ChatSession,
        root: PersonaInfo,
        path: Sequence[Node],
        transcript: Sequence[TranscriptLine],
    ) -> groups.GroupView | None:
        """Its own panes' contents, from the active path (with calls) and its transcript."""
        return None

    def message_data(self, session: ChatSession, speaker: str) -> dict[str, str] | None:
        """The data a user message's node carries, given who the person picked to answer
        (ValueError: a pick it refuses). Nothing, unless a kind says otherwise."""
        return None


@dataclass(frozen=True)
class DialogueKind(Kind):
    def build(self, session: ChatSession) -> ResponseDrivenPersona:
        row = session.character
        # The character as this session meets it: card macros filled in, lorebooks read.
        character: Any = SessionCards.of(session, [row]).character(row) if row is not None else None
        root = build_hierarchy(
            "dialogue",
            character=character or {"name": "Character"},
            strategy=session.strategy or "nested",
        )
        if row is not None:
            apply_profiles(root, character_profiles(row))
        return apply_profiles(root, session_profiles(session))


@dataclass(frozen=True)
class CodeKind(Kind):
    def build(self, session: ChatSession) -> ResponseDrivenPersona:
        return apply_profiles(build_hierarchy("code"), session_profiles(session))


@dataclass(frozen=True)
class GroupKind(Kind):
    def build(self, session: ChatSession) -> ResponseDrivenPersona:
        """The director over one dialogue hierarchy per member character (only the owner's
        characters, in the session's member order)."""
        members = group_members(session)
        cards = SessionCards.of(session, members)
        names = [c.name for c in members]
        root = group_hierarchy(
            [(c.slug, cards.character(c, group=names)) for c in members],
            group_settings_from_dict(session.group_settings or {}),
            strategy=session.strategy or "nested",
            talkativeness={c.slug: float(c.data.get("talkativeness", 0.5)) for c in members},
            ratings=RATINGS,
        )
        for character in members:
            apply_profiles(root.children[character.slug], character_profiles(character))
        return apply_profiles(root, session_profiles(session))

    def view(
        self,
        session: ChatSession,
        root: PersonaInfo,
        path: Sequence[Node],
        transcript: Sequence[TranscriptLine],
    ) -> groups.GroupView:
        """Members, heat and policy costs."""
        return groups.group_view(session.group_settings or {}, root, path, transcript)

    def message_data(self, session: ChatSession, speaker: str) -> dict[str, str] | None:
        """In manual order, who speaks next (the person must pick a member)."""
        return groups.speaker_data(session, speaker)


RATINGS = BackgroundRatings()
"""This process's background heat rating calls, for every group chat. The ratings themselves
live on the path (personas/group/ratings.py); this holds the calls in flight and what landed
until a decision writes it."""

KINDS: dict[str, Kind] = {
    Hierarchy.DIALOGUE: DialogueKind(Hierarchy.DIALOGUE),
    Hierarchy.CODE: CodeKind(Hierarchy.CODE),
    Hierarchy.GROUP: GroupKind(
        Hierarchy.GROUP, max_steps=GROUP_MAX_STEPS, director=DIRECTOR, own_panes=True
    ),
}


def kind_of(session: ChatSession) -> Kind:
    return KINDS[session.hierarchy]


def group_members(session: ChatSession) -> list[Character]:
    """A group chat's characters (only its owner's), in member order."""
    ids = [int(i) for i in session.members or [] if isinstance(i, int)]
    by_id = {c.pk: c for c in Character.objects.filter(owner_id=session.owner_id, pk__in=ids)}
    return [by_id[i] for i in ids if i in by_id]


def hierarchy_for(session: ChatSession) -> ResponseDrivenPersona:
    """The session's persona tree, with its LLM profiles applied."""
    return kind_of(session).build(session)


def run_config_for(session: ChatSession) -> RunConfig:
    return RunConfig(
        mode=Mode(session.mode),
        breakpoints=frozenset(session.breakpoints or []),
        max_steps=kind_of(session).max_steps,
        guided=session.guided,
    )


_models: dict[tuple[str | None, str, str], ChatModel] = {}


def chat_model() -> ChatModel:
    """The process's ChatModel for the configured endpoint (read from the environment each
    time, so tests and operators can repoint it without a restart)."""
    config = endpoint_from_env(os.environ)
    key = (config.base_url, config.api_key, config.default_model)
    if key not in _models:
        _models[key] = build_chat_model(config)
    return _models[key]


class Walks:
    """The last PathWalk of recent sessions, so a run starts where the previous one ended
    without re-reading the session's path (engines check a walk before trusting it)."""

    def __init__(self, keep: int = 64) -> None:
        self.keep = keep
        self._walks: OrderedDict[int, PathWalk] = OrderedDict()

    def get(self, session_id: int) -> PathWalk | None:
        walk = self._walks.get(session_id)
        if walk is not None:
            self._walks.move_to_end(session_id)
        return walk

    def put(self, session_id: int, walk: PathWalk | None) -> None:
        if walk is None:
            self._walks.pop(session_id, None)
            return
        self._walks[session_id] = walk
        self._walks.move_to_end(session_id)
        while len(self._walks) > self.keep:
            self._walks.popitem(last=False)

    def clear(self) -> None:
        self._walks.clear()


WALKS = Walks()


def engine_for(session: ChatSession, observer: Observer | None = None) -> Engine:
    engine = Engine(
        hierarchy_for(session),
        OrmStore(session.pk),
        chat_model(),
        run_config_for(session),
        observer,
    )
    engine.walk = WALKS.get(session.pk)
    engine.conversation = str(session.pk)  # gen_ai.conversation.id of its traces
    return engine


def reset_for_tests() -> None:
    _models.clear()
    WALKS.clear()
