"""Training data out of a person's sessions and comparisons, for the page and the API.

What is exported is records.py's (preference pairs and supervised examples, from each
session's tree) and `vote_pairs` here (blind votes from comparisons). The filters, the same
for the page and the API (`Filters.parse`):
- scope: one session (`session`), one character (`character`: its dialogue sessions, the
  group chats it is a member of, where only its own personas count, and its comparisons),
  or everything the person owns (neither);
- `persona`: a persona path; its records and those of every persona under it;
- `since` / `until`: dates (inclusive, UTC) of the decision: the newer node of a pair, the
  example's node, the vote;
- `auto`: supervised examples include proposals approved by autonomous runs, not only by a
  person.

**Blind votes** (`vote_pairs`): a vote for contender W on script line i of a comparison makes
one pair per other contender L that answered that line: chosen = W's reply, rejected = L's
(sample 1 of each, the replies the board shows and votes are cast on). The prompt is the
conversation as W heard it: the script's lines so far, with W's earlier replies as the
assistant's, ending with line i (L heard its own earlier replies: the records say so in
`rejected_session`). A contender that passed or failed on the line is left out.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from typing import Any

from django.contrib.auth.models import User
from django.db.models import Q

from personaweb.compare import metrics
from personaweb.compare.models import Comparison, Vote
from personaweb.training.records import Context, preference_pairs, supervised_examples
from personaweb.web.ids import parse_pk
from personaweb.web.models import Character, ChatSession, Hierarchy
from personaweb.web.store import OrmStore

KINDS = {
    "preferences": "Preference pairs (prompt / chosen / rejected)",
    "sft": "Supervised examples (chat messages)",
    "votes": "Blind votes as preference pairs",
}
MAX_PERSONA = 300


class FilterError(ValueError):
    """A filter that is not a filter at all (400), or names nothing of the person's (404:
    another's session or character, like a missing one)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Filters:
    session: ChatSession | None = None
    character: Character | None = None
    persona: str = ""
    since: date | None = None
    until: date | None = None
    auto: bool = False

    @classmethod
    def parse(cls, owner: User, raw: Mapping[str, Any]) -> Filters:
        """The filters in a query string (or the API's), checked against what `owner` owns."""

        def pk(name: str) -> int | None:
            value = raw.get(name)
            if value in (None, ""):
                return None
            if (number := parse_pk(value)) is None:
                raise FilterError(f"{name}: not an id")
            return number

        session = character = None
        if (session_pk := pk("session")) is not None:
            session = ChatSession.objects.filter(owner=owner, pk=session_pk).first()
            if session is None:
                raise FilterError("session: no such session", 404)
        if (character_pk := pk("character")) is not None:
            character = Character.objects.filter(owner=owner, pk=character_pk).first()
            if character is None:
                raise FilterError("character: no such character", 404)
        persona = str(raw.get("persona") or "").strip().strip("/")
        if len(persona) > MAX_PERSONA:
            raise FilterError("persona: too long")
        return cls(
            session=session,
            character=character,
            persona=persona,
            since=_date(raw.get("since"), "since"),
            until=_date(raw.get("until"), "until"),
            auto=str(raw.get("auto") or "").lower() in ("1", "true", "on", "yes"),
        )

    def keeps(self, record: dict[str, Any], slug: str = "") -> bool:
        persona = str(record.get("persona", ""))
        if self.persona and not (persona == self.persona or persona.startswith(self.persona + "/")):
            return False
        if slug and record.get("character") != slug:
            return False
        when = datetime.fromisoformat(str(record["created_at"]))
        if self.since is not None and when < datetime.combine(self.since, time.min, UTC):
            return False
        return self.until is None or when <= datetime.combine(self.until, time.max, UTC)


def _date(value: Any, name: str) -> date | None:
    if value in (None, ""):
        return None
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(str(value)[:10]) if len(str(value)) == 10 else _bad(name)
    except ValueError:
        return _bad(name)


def _bad(name: str) -> date:
    raise FilterError(f"{name}: a date such as 2025-06-30")


# --- sessions -----------------------------------------------------------------------------------


def sessions_of(owner: User, filters: Filters) -> list[ChatSession]:
    if filters.session is not None:
        return [filters.session]
    sessions = ChatSession.objects.filter(owner=owner).select_related("character").order_by("pk")
    if filters.character is None:
        return list(sessions)
    pk = filters.character.pk
    mine = sessions.filter(Q(character_id=pk) | Q(hierarchy=Hierarchy.GROUP))
    return [s for s in mine if s.character_id == pk or pk in (s.members or [])]


def context_of(session: ChatSession) -> Context:
    if session.hierarchy == Hierarchy.GROUP:
        members = Character.objects.filter(owner_id=session.owner_id, pk__in=session.members or [])
        return Context(session.pk, characters={f"director/{c.slug}": c.slug for c in members})
    return Context(session.pk, character=session.character.slug if session.character else "")


def _session_records(owner: User, filters: Filters, kind: str) -> Iterator[dict[str, Any]]:
    slug = filters.character.slug if filters.character is not None else ""
    for session in sessions_of(owner, filters):
        nodes = OrmStore(session.pk).all_nodes()
        ctx = context_of(session)
        found = (
            preference_pairs(nodes, ctx)
            if kind == "preferences"
            else supervised_examples(nodes, ctx, auto=filters.auto)
        )
        # A group chat's record belongs to a character only under that character's personas.
        only = slug if session.hierarchy == Hierarchy.GROUP else ""
        yield from (r for r in found if filters.keeps(r, only))


# --- votes --------------------------------------------------------------------------------------


def vote_pairs(owner: User, filters: Filters) -> Iterator[dict[str, Any]]:
    """Blind votes of `owner`'s comparisons as preference pairs (see the module doc)."""
    comparisons = Comparison.objects.filter(owner=owner, blind=True).order_by("pk")
    if filters.character is not None:
        comparisons = comparisons.filter(character=filters.character)
    if filters.session is not None:
        comparisons = comparisons.filter(contenders__session=filters.session).distinct()
    for comparison in comparisons:
        votes = Vote.objects.filter(comparison=comparison).select_related("voter").order_by("pk")
        if not votes:
            continue
        columns = {c.contender.pk: c for c in metrics.columns(comparison)}
        script = list(comparison.script)
        for vote in votes:
            record_base = _vote_base(comparison, vote)
            if not filters.keeps({**record_base, "persona": filters.persona}):  # not per persona
                continue
            winner = columns.get(vote.contender_id)
            if winner is None or not _answered(winner.turns[vote.line_index]):
                continue
            prompt = _conversation(script, winner, vote.line_index)
            for loser in columns.values():
                turn = loser.turns[vote.line_index]
                if loser is winner or not _answered(turn):
                    continue
                yield {
                    "prompt": prompt,
                    "chosen": [
                        {"role": "assistant", "content": winner.turns[vote.line_index].reply}
                    ],
                    "rejected": [{"role": "assistant", "content": turn.reply}],
                    **record_base,
                    "chosen_contender": _who(winner),
                    "rejected_contender": _who(loser),
                    "chosen_session": winner.contender.session_id,
                    "rejected_session": loser.contender.session_id,
                }


def _vote_base(comparison: Comparison, vote: Vote) -> dict[str, Any]:
    character = comparison.character
    return {
        "rule": "blind_vote",
        "comparison": comparison.pk,
        "character": character.slug if character is not None else "",
        "line": vote.line_index,
        "voter": vote.voter.get_username(),
        "created_at": vote.created_at.astimezone(UTC).isoformat(),
    }


def _answered(turn: metrics.Turn) -> bool:
    return turn.done and not turn.passed and bool(turn.reply.strip())


def _who(column: metrics.Column) -> dict[str, Any]:
    c = column.contender
    return {"id": c.pk, "letter": c.letter, "strategy": c.strategy, "model": c.model}


def _conversation(script: list[str], column: metrics.Column, line: int) -> list[dict[str, str]]:
    messages: list[dict[str, str]] = []
    for i in range(line):
        messages.append({"role": "user", "content": script[i]})
        if column.turns[i].reply:
            messages.append({"role": "assistant", "content": column.turns[i].reply})
    messages.append({"role": "user", "content": script[line]})
    return messages


# --- all kinds ----------------------------------------------------------------------------------


def records(owner: User, kind: str, filters: Filters) -> Iterator[dict[str, Any]]:
    """The records of one kind (see KINDS) that pass the filters."""
    if kind == "votes":
        return vote_pairs(owner, filters)
    if kind in ("preferences", "sft"):
        return _session_records(owner, filters, kind)
    raise FilterError(f"no such kind of training data: {kind!r}")


def jsonl(found: Iterator[dict[str, Any]]) -> Iterator[str]:
    """JSON Lines: one record per line, UTF-8."""
    for record in found:
        yield json.dumps(record, ensure_ascii=False) + "\n"


def filename(kind: str, filters: Filters) -> str:
    scope = (
        f"session-{filters.session.pk}"
        if filters.session is not None
        else f"character-{filters.character.slug}"
        if filters.character is not None
        else "all"
    )
    return f"personaweb-{kind}-{scope}.jsonl"
