"""What the debugger shows for a group chat, computed from the active path's nodes.

Who said a transcript line (the character's name, not `director/<slug>`), each character's
current heat (from its latest decision node), what each reply policy cost (`policy_costs`),
and the readable facts of one decision node. Templates only lay these out; the page and the
WebSocket consumer both go through here, so the heat pane looks the same both ways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personaweb.personas import Node, NodeKind, PersonaInfo
from personaweb.personas.group import DIRECTOR, GroupSettings, group_settings_from_dict
from personaweb.personas.group_metrics import PolicyCost, policy_costs
from personaweb.personas.heat import TurnOrder
from personaweb.personas.heat.decision import fmt
from personaweb.personas.state import TranscriptLine
from personaweb.web.group_forms import ORDER_CHOICES, POLICY_CHOICES
from personaweb.web.models import Character, ChatSession


@dataclass(frozen=True)
class Member:
    slug: str
    name: str
    policy: str
    """The reply policy that applies to this character."""


@dataclass
class HeatRow:
    """One character in the heat pane."""

    member: Member
    decision: Node | None = None
    """Its latest decision node on the active path (None: nothing heard yet)."""
    lines: int = 0
    """Lines it said since the user's last message."""

    @property
    def numbers(self) -> Mapping[str, float]:
        return (self.decision.data.get("numbers") or {}) if self.decision else {}

    @property
    def label(self) -> str:
        return "confidence - penalty" if "heat" not in self.numbers else "heat"

    @property
    def value(self) -> float | None:
        numbers = self.numbers
        if "heat" in numbers:
            return float(numbers["heat"])
        if "score" in numbers:
            return float(numbers["score"])
        return None

    @property
    def threshold(self) -> float | None:
        value = self.numbers.get("threshold")
        return float(value) if value is not None and self.value is not None else None

    @property
    def scale(self) -> float:
        """The meter's full width: twice the threshold, or the value if it is beyond that."""
        return max(2 * (self.threshold or 0.5), self.value or 0.0, 0.01)

    @property
    def verdict(self) -> str:
        return verdict(self.decision.data) if self.decision else "not heard yet"

    @property
    def reason(self) -> str:
        return str(self.decision.data.get("reason", "")) if self.decision else ""


@dataclass
class GroupView:
    """Everything the group parts of the page need."""

    settings: GroupSettings
    members: list[Member]
    heat: list[HeatRow]
    costs: list[PolicyCost]
    source: int | None = None
    """For a replay: the session it replays."""

    @property
    def manual(self) -> bool:
        return self.settings.order is TurnOrder.MANUAL

    @property
    def policy(self) -> str:
        return self.settings.policy.default.value

    @property
    def order(self) -> str:
        return self.settings.order.value


def members_of(root: PersonaInfo, settings: GroupSettings) -> list[Member]:
    """The characters under the director, in list order."""
    return [
        Member(
            slug=child.name,
            name=child.display_name,
            policy=settings.policy.for_character(child.name).value,
        )
        for child in root.children
    ]


def verdict(data: Mapping[str, Any]) -> str:
    """speaks, waits (wanted to, someone else went first) or silent."""
    if data.get("chosen"):
        return "speaks"
    return "waits" if data.get("speak") else "silent"


def heat_rows(members: Sequence[Member], path: Sequence[Node]) -> list[HeatRow]:
    """Each character with its latest decision on the path."""
    rows = {m.slug: HeatRow(m) for m in members}
    for node in path:
        if node.kind is NodeKind.DECISION:
            row = rows.get(str(node.data.get("character", "")))
            if row is not None:
                row.decision = node
    return list(rows.values())


def count_lines(rows: Sequence[HeatRow], transcript: Sequence[TranscriptLine]) -> None:
    """Set how many lines each character said since the user's last message."""
    by_path = {f"{DIRECTOR}/{r.member.slug}": r for r in rows}
    for row in rows:
        row.lines = 0
    for line in transcript:
        if line.speaker == "user":
            for row in rows:
                row.lines = 0
        elif line.speaker in by_path and not line.passed and line.text:
            by_path[line.speaker].lines += 1


def group_view(
    session_settings: Mapping[str, Any],
    root: PersonaInfo,
    path: Sequence[Node],
    transcript: Sequence[TranscriptLine],
) -> GroupView:
    settings = group_settings_from_dict(session_settings)
    members = members_of(root, settings)
    rows = heat_rows(members, path)
    count_lines(rows, transcript)
    source = session_settings.get("replay_of")
    return GroupView(
        settings=settings,
        members=members,
        heat=rows,
        costs=policy_costs(path),
        source=int(source) if isinstance(source, int) else None,
    )


# --- one decision node ------------------------------------------------------------------------


KEY_NUMBERS = ("heat", "threshold", "fatigue", "confidence", "penalty", "score")


def decision_facts(data: Mapping[str, Any]) -> str:
    """The few numbers a step-tree row shows: heat vs threshold, fatigue, confidence/penalty."""
    numbers = data.get("numbers") or {}
    parts = []
    if "heat" in numbers:
        parts.append(f"heat {fmt(numbers['heat'])} / {fmt(numbers.get('threshold', 0.0))}")
        if numbers.get("fatigue"):
            parts.append(f"fatigue {fmt(numbers['fatigue'])}")
    elif "confidence" in numbers:
        parts.append(
            f"confidence {fmt(numbers['confidence'])} - penalty "
            f"{fmt(numbers.get('penalty', 0.0))} / {fmt(numbers.get('threshold', 0.0))}"
        )
    return " · ".join(parts)


def decision_numbers(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Every number of a decision, the key ones first, for the inspector."""
    numbers = dict(data.get("numbers") or {})
    keys = [k for k in KEY_NUMBERS if k in numbers]
    keys += sorted(k for k in numbers if k not in KEY_NUMBERS)
    out = []
    for key in keys:
        value = numbers[key]
        out.append((key, fmt(value) if isinstance(value, int | float) else str(value)))
    return out


# --- who speaks next (manual order) ------------------------------------------------------


def member_slugs(session: ChatSession) -> dict[str, str]:
    """slug -> name of the session's characters (only the owner's)."""
    ids = [int(i) for i in session.members or []]
    rows = Character.objects.filter(owner_id=session.owner_id, pk__in=ids)
    return {c.slug: c.name for c in rows}


def speaker_data(session: ChatSession, speaker: str) -> dict[str, str] | None:
    """The inbound node's data for a group message: in manual order, who speaks next.
    Raises ValueError for a speaker who is not in the group."""
    manual = (session.group_settings or {}).get("order") == "manual"
    if not speaker:
        if manual:
            raise ValueError("manual order: pick who speaks next")
        return None
    if speaker not in member_slugs(session):
        raise ValueError(f"{speaker!r} is not in this group chat")
    return {"speaker": speaker}


def page_context(session: ChatSession) -> dict[str, Any]:
    """Extra context for a group session's debugger page: the replay form and its replays."""
    return {
        "policy_choices": POLICY_CHOICES,
        "order_choices": ORDER_CHOICES,
        "replays": list(
            ChatSession.objects.filter(
                owner_id=session.owner_id, group_settings__replay_of=session.pk
            ).order_by("created_at")
        ),
    }
