"""What the API reads and writes: one pydantic schema per shape, for the OpenAPI document.

Every input schema refuses NaN and infinities, unknown keys are ignored, texts are bounded by
the actions themselves (one rule, the pages' rule).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from ninja import Schema
from pydantic import ConfigDict, Field

from personaweb.personas.heat import DEFAULT_TURN_CAP

MAX_TEXT = 20_000
"""As the engine's MAX_INPUT_CHARS: the actions refuse longer text with a 400."""


class In(Schema):
    model_config = ConfigDict(allow_inf_nan=False)


class Error(Schema):
    """Every 4xx: what went wrong, in a sentence (or, for a 422, the fields that did not
    validate)."""

    detail: str | list[dict[str, Any]]


# --- sessions ---------------------------------------------------------------------------------

Hierarchy = Literal["dialogue", "code", "group"]
Strategy = Literal["single", "nested", "linear"]
Mode = Literal["autonomous", "review", "breakpoints"]


class Profile(In):
    model: str = Field(
        default="", max_length=200, description="Empty: the endpoint's default model"
    )
    temperature: float | None = Field(default=None, ge=0, le=2)


class GroupMember(In):
    character: int = Field(description="One of your characters' ids")
    policy: str = Field(
        default="", max_length=40, description="A reply policy of its own (blank: the session's)"
    )
    greeting: str = Field(default="", max_length=40, description="Which greeting it opens with")
    model: str = Field(default="", max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)


class GroupSettings(In):
    policy: str = Field(
        default="heuristic",
        max_length=40,
        description="heuristic, prepass, null_action or async_rating",
    )
    order: str = Field(
        default="natural", max_length=40, description="natural, list, pooled or manual"
    )
    half_life_s: float = 30.0
    threshold: float = 0.6
    turn_cap: int = DEFAULT_TURN_CAP
    prepass_threshold: float = 0.6
    prepass_model: str = Field(default="", max_length=200)
    prepass_temperature: float = 0.0


class SessionIn(In):
    """A new session, as the home page's form (dialogue, code) or the group-chat form makes it."""

    hierarchy: Hierarchy = "dialogue"
    strategy: Strategy = "nested"
    mode: Mode = "review"
    guided: bool = True
    title: str = Field(default="", max_length=200)
    character: int | None = Field(default=None, description="Dialogue: one of your characters' ids")
    profiles: dict[str, Profile] = Field(
        default_factory=dict, description="By persona path: the model and temperature to use"
    )
    user_name: str = Field(default="", max_length=80, description="What {{user}} stands for")
    greeting: str = Field(
        default="", max_length=40, description="Dialogue: the greeting to open with"
    )
    lorebooks: list[int] = Field(default_factory=list, max_length=100)
    members: list[GroupMember] = Field(
        default_factory=list, max_length=8, description="Group: the characters, in order"
    )
    group: GroupSettings = Field(default_factory=GroupSettings)


class SessionOut(Schema):
    id: int
    title: str
    hierarchy: str
    strategy: str
    mode: str
    guided: bool
    breakpoints: list[str]
    character: int | None
    members: list[int]
    active_node: str
    running: bool
    created_at: datetime
    updated_at: datetime


class ModeIn(In):
    mode: Mode
    breakpoints: list[str] = Field(default_factory=list, max_length=200)
    guided: bool | None = None


class MessageIn(In):
    text: str = Field(max_length=MAX_TEXT * 2)
    speaker: str = Field(
        default="", max_length=200, description="Group chats in manual order: who speaks"
    )


class RunOut(Schema):
    id: int
    session: int
    trigger: str
    status: str
    start_node: str
    leaf_node: str
    error: str
    started_at: datetime
    finished_at: datetime | None


# --- nodes ------------------------------------------------------------------------------------

NodeAction = Literal[
    "approve", "approve_turn", "reject", "feedback", "edit", "branch", "retry", "continue"
]


class NodeOut(Schema):
    id: str
    parent_id: str | None
    persona: str
    kind: str
    status: str
    content: str
    action: str | None
    target: str | None
    sender: str
    seq: int
    created_at: float


class AnnotationOut(Schema):
    id: int
    node: str
    author: str
    text: str
    label: str
    score: float | None
    created_at: datetime


class NodeDetail(NodeOut):
    data: dict[str, Any]
    call: dict[str, Any] | None = Field(
        description="The LLM call behind the node: the exact messages sent, model, "
        "temperature, tokens, latency, finish reason (null for human- or code-made steps)"
    )
    has_children: bool
    allowed_actions: list[str]
    annotations: list[AnnotationOut]


class NextOut(Schema):
    kind: str
    persona: str
    node_id: str
    message: str


class LineOut(Schema):
    speaker: str
    text: str
    node_id: str
    passed: bool
    truncated: bool


class TreeOut(Schema):
    nodes: list[NodeOut]
    active_leaf: str
    total: int
    next_after: int | None = Field(description="Pass as `after` for the next page (null: done)")


class PathOut(Schema):
    leaf: str
    nodes: list[NodeOut]
    transcript: list[LineOut]
    next: NextOut | None
    stack: list[str]


class NodeActionIn(In):
    text: str = Field(default="", max_length=MAX_TEXT * 2, description="Feedback (also for branch)")
    content: str = Field(default="", max_length=MAX_TEXT * 2, description="The edited proposal")
    route: str = Field(
        default="",
        max_length=300,
        description='Where an edit goes: "", "reply" or "delegate:<child>"',
    )


class AnnotationIn(In):
    text: str = Field(default="", max_length=MAX_TEXT * 2)
    label: str = Field(default="", max_length=200)
    score: float | None = None


# --- characters -------------------------------------------------------------------------------


class CharacterOut(Schema):
    id: int
    name: str
    slug: str
    created_at: datetime
    updated_at: datetime


class CharacterDetail(CharacterOut):
    sheet: dict[str, Any] = Field(description="The character sheet (as a card's fields)")


class CharacterIn(In):
    """A character sheet, as the character page edits it (and a card's fields map to it). Only
    `name` is required; what is left out takes the sheet's default. Unknown fields are
    refused: they are usually typos. Limits are the sheet's own (a 400 names the field)."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)
    name: str = Field(max_length=1000)
    description: str = ""
    personality: str = ""
    mood: str = ""
    goals: list[str] = Field(default_factory=list)
    sample_lines: list[str] = Field(default_factory=list, description="The character's voice")
    mes_example: str = Field(
        default="", description="The card's example dialogue as written, written back on export"
    )
    greeting: str = ""
    strategy: Strategy = "nested"
    profiles: dict[str, dict[str, Any]] = Field(
        default_factory=dict, description="LLM profiles by role (model, temperature, ...)"
    )
    talkativeness: float = Field(default=0.5, ge=0, le=1)
    tags: list[str] = Field(default_factory=list)
    scenario: str = ""
    creator_notes: str = ""
    system_prompt: str = ""
    post_history_instructions: str = ""
    alternate_greetings: list[str] = Field(default_factory=list)
    group_greetings: list[str] = Field(default_factory=list)
    character_book: dict[str, Any] | None = None
    extensions: dict[str, Any] = Field(default_factory=dict)
    card_extras: dict[str, Any] = Field(default_factory=dict)


# --- comparisons ------------------------------------------------------------------------------


class ContenderIn(In):
    strategy: Strategy
    model: str = Field(default="", max_length=200)
    temperature: float = Field(default=0.7, ge=0, le=2)


class ComparisonIn(In):
    character: int
    script: list[str] = Field(min_length=1, max_length=20)
    contenders: list[ContenderIn] = Field(min_length=2, max_length=4)
    samples: int | None = Field(default=None, ge=1, le=20)
    blind: bool = False
    title: str = Field(default="", max_length=200)


class ContenderOut(Schema):
    id: int
    letter: str
    label: str | None = Field(description="null while a blind comparison hides it")
    session: int | None
    error: str


class ComparisonOut(Schema):
    id: int
    title: str
    character: int | None
    script: list[str]
    samples: int
    blind: bool
    revealed: bool
    labels_shown: bool
    created_at: datetime
    contenders: list[ContenderOut]


class VoteIn(In):
    line: int = Field(ge=0, description="The script line's index (0 is the first)")
    contender: int


class VoteOut(Schema):
    line: int
    contender: int


# --- tokens -----------------------------------------------------------------------------------


class TokenOut(Schema):
    id: int
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
