"""Group chats: a director persona on top applies the reply policy; each character under it is a
whole dialogue hierarchy (director -> character -> responder / rewriter).

Every message is heard by every other character. After each one the director records, as
decision nodes, who would speak and why (with the numbers), then delegates to the next speaker
or passes when everyone is quiet. Its children's replies are relayed into the conversation.
Conversations between characters end by themselves through fatigue; a turn cap per user
message is the last guard.

The director's jobs are in files of their own: reading the conversation off its path
(conversation.py), deciding (deciding.py), background ratings (ratings.py), the text its
characters are told (prompts.py) and its settings (settings.py). This file is the persona that
puts them together, and what a person's review of its choice means.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from personaweb.llm.types import LLMProfile
from personaweb.personas.dialogue import CharacterLike, dialogue_hierarchy
from personaweb.personas.group.conversation import Heard, hear, reviews_since, settled
from personaweb.personas.group.deciding import CalledDecision, Decider
from personaweb.personas.group.prompts import reviewer_note, turn_message
from personaweb.personas.group.ratings import RATINGS, BackgroundRatings
from personaweb.personas.group.settings import GroupSettings
from personaweb.personas.heat.chat import Member, display_name
from personaweb.personas.heat.decision import Decision, ReplyPolicy
from personaweb.personas.heat.mentions import parse_mentions
from personaweb.personas.persona import ProposeContext, ResponseDrivenPersona
from personaweb.personas.proposal import Deliberation, ProposedResponse
from personaweb.personas.state import EventKind
from personaweb.personas.tree import Action

DIRECTOR = "director"
"""The group director's name: the top persona of every group chat."""
GROUP_MAX_STEPS = 400
"""A RunConfig.max_steps that fits a group turn: every message costs a decision per
character, and every character turn a whole dialogue hierarchy's steps, up to the turn cap."""


def _member(character: CharacterLike, slug: str, talkativeness: float) -> Member:
    return Member(
        slug=slug,
        name=character.name,
        talkativeness=talkativeness,
        persona=f"{character.description} {character.personality}".strip()[:600],
    )


class GroupDirector(ResponseDrivenPersona):
    """The top of a group chat. Code-managed: the policy decides, not an LLM's whim."""

    role_kind: ClassVar[str] = "code"

    def __init__(
        self,
        members: Sequence[tuple[str, CharacterLike, ResponseDrivenPersona]],
        settings: GroupSettings | None = None,
        *,
        ratings: BackgroundRatings | None = None,
        talkativeness: Mapping[str, float] | None = None,
    ) -> None:
        # No members is allowed: a group whose characters were all deleted still opens, and
        # its director simply has nobody to ask (every message passes).
        roots = []
        for slug, _character, root in members:
            root.name = slug
            roots.append(root)
        super().__init__(
            DIRECTOR,
            description="Decides who in the group speaks next.",
            children=roots,
            display_name="Group",
        )
        talk = dict(talkativeness or {})
        self.members = [_member(c, slug, talk.get(slug, 0.5)) for slug, c, _root in members]
        self.ratings = ratings or BackgroundRatings()
        """Background rating calls in flight (see ratings.py: the ratings live on the path)."""
        self.decider = Decider(self.members, settings or GroupSettings(), self.ratings)

    @property
    def settings(self) -> GroupSettings:
        """The group's settings: the decider's, their one owner."""
        return self.decider.settings

    @settings.setter
    def settings(self, settings: GroupSettings) -> None:
        self.decider.settings = settings

    def speakers(self) -> frozenset[str]:
        """Every character speaks in the conversation: their replies are its lines."""
        return frozenset(child.path for child in self.children.values())

    # -- deciding ----------------------------------------------------------------------

    async def deliberate(self, ctx: ProposeContext) -> list[Deliberation]:
        heard = hear(ctx.history)
        if not heard.messages or settled(ctx.history, heard) is not None:
            return []  # decided already (resumed after a restart, or a person reviewed it)
        round_ = await self.decider.decide(ctx, heard)
        decisions = round_.decisions
        chosen = self.decider.choose(decisions, heard)
        shown = [m for m in self.members if m.slug in decisions]
        out = []
        for index, member in enumerate(shown):
            decision = decisions[member.slug]
            speaks = member.slug == chosen
            verb = (
                "speaks"
                if speaks
                else ("would speak, but waits" if decision.speak else "stays silent")
            )
            data: dict[str, Any] = {
                **decision.to_dict(),
                "chosen": speaks,
                "order": self.settings.order.value,
                "heard": heard.node_ids[-1],
                # Written one node at a time: the count tells a complete set from one cut
                # short by a stopped process (or a branch from a middle decision).
                "index": index,
                "of": len(shown),
            }
            landed = round_.ratings.get(member.slug)
            if landed:
                data[RATINGS] = [r.to_dict() for r in landed]
            call = decision.call if isinstance(decision, CalledDecision) else None
            out.append(Deliberation(f"{member.name} {verb}: {decision.reason}", data, call))
        return out

    # -- proposing ---------------------------------------------------------------------

    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        heard = hear(ctx.history)
        decided = settled(ctx.history, heard) or []
        reviews = reviews_since(ctx.history)
        rejected = {e.target for e in reviews if e.kind is EventKind.REJECTED and e.target}
        notes = " ".join(e.text for e in reviews if e.kind is EventKind.FEEDBACK)
        asked = [m.slug for m in self.members if m.slug in parse_mentions(notes, self.members)]
        if asked:
            # "Let Bob answer": a reviewer naming a character overrules the policy.
            slug = asked[0]
            why = f"the reviewer asked for {display_name(self.members, slug)}"
            return self._delegate(ctx, slug, heard, why)
        if rejected or notes:
            # A reviewed choice: pick again among the others who wanted to speak.
            willing = {
                str(e.data["character"]): Decision.from_dict(e.data)
                for e in decided
                if e.data.get("speak") and e.data.get("character") not in rejected
            }
            again = self.decider.choose(willing, heard) if willing else None
            if again is None:
                why = "nobody else wants to speak"
                return ProposedResponse(ctx.persona, Action.PASS, "", data={"reason": why})
            return self._delegate(ctx, again, heard, "chosen again after a review", notes)
        chosen = next((e for e in decided if e.data.get("chosen")), None)
        if chosen is None:
            why = "everyone stays quiet" if decided else "nothing to answer"
            return ProposedResponse(ctx.persona, Action.PASS, "", data={"reason": why})
        return self._delegate(ctx, str(chosen.data["character"]), heard, chosen.text)

    def _delegate(
        self, ctx: ProposeContext, slug: str, heard: Heard, reason: str, note: str = ""
    ) -> ProposedResponse:
        can_pass = self.settings.policy.for_character(slug) is ReplyPolicy.NULL_ACTION
        message = reviewer_note(turn_message(slug, heard, self.members, can_pass=can_pass), note)
        data = {"reason": reason}
        return ProposedResponse(ctx.persona, Action.DELEGATE, message, target=slug, data=data)


def group_hierarchy(
    characters: Sequence[tuple[str, CharacterLike]],
    settings: GroupSettings | None = None,
    *,
    strategy: str = "nested",
    profile: LLMProfile | None = None,
    talkativeness: Mapping[str, float] | None = None,
    ratings: BackgroundRatings | None = None,
) -> GroupDirector:
    """A director over one dialogue hierarchy per (slug, character). Characters whose policy is
    the null action get a persona tree that can pass. `ratings`: where background ratings run
    (one per process serves every group; each director has its own otherwise)."""
    settings = settings or GroupSettings()
    members = []
    for slug, character in characters:
        can_pass = settings.policy.for_character(slug) is ReplyPolicy.NULL_ACTION
        root = dialogue_hierarchy(character, strategy=strategy, profile=profile, can_pass=can_pass)
        members.append((slug, character, root))
    return GroupDirector(members, settings, ratings=ratings, talkativeness=talkativeness)
