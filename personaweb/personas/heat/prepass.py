"""LLM pre-pass: a cheap structured call decides whether a character answers at all.

The reply call is only made when the pre-pass says so, which saves the expensive call for
messages a character would rather leave alone. A numeric fatigue penalty for back-and-forth
is taken off the model's confidence in code, so the model cannot talk its way past it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from personaweb.llm import calls
from personaweb.llm.types import CallRecord, ChatMessage, ChatModel, LLMProfile
from personaweb.personas.heat.chat import (
    USER,
    GroupMessage,
    Member,
    display_name,
    exchanges_with,
)
from personaweb.personas.heat.decision import Decision, ReplyPolicy, fmt
from personaweb.personas.heat.mentions import parse_mentions

DEFAULT_THRESHOLD = 0.6
"""Respond when confidence minus penalty reaches this."""
DEFAULT_HISTORY_LENGTH = 5
"""How many recent messages the pre-pass prompt quotes."""
PENALTY_PER_EXCHANGE = 0.2
"""Penalty per time the character answered the current speaker in the penalty window."""
MAX_PENALTY = 0.8
"""The penalty never exceeds this: a direct question can still get through."""
PENALTY_WINDOW = 6
"""How many recent messages the back-and-forth count looks at."""
_MAX_REASON_CHARS = 300

PREPASS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "should_respond": {"type": "boolean"},
        "reason": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    "required": ["should_respond", "reason", "confidence"],
    "additionalProperties": False,
}
"""The JSON schema the pre-pass answer must satisfy."""
PREPASS_SCHEMA_NAME = "reply_decision"


@dataclass(frozen=True)
class PrepassVerdict:
    """The pre-pass model's answer, checked."""

    should_respond: bool
    """The model's own yes or no."""
    reason: str
    """The model's explanation (untrusted text, shown escaped)."""
    confidence: float
    """How strongly the character wants to speak, 0..1."""


def parse_prepass(value: Any) -> PrepassVerdict:
    """Check a parsed pre-pass answer; ValueError says what is wrong with it.

    The port validates against the schema already, but a server may ignore the schema, so
    this is the last line: LLM output is untrusted input.
    """
    if not isinstance(value, Mapping):
        raise ValueError(f"expected a JSON object, got {type(value).__name__}")
    should_respond = value.get("should_respond")
    confidence = value.get("confidence")
    reason = value.get("reason", "")
    if not isinstance(should_respond, bool):
        raise ValueError("should_respond must be true or false")
    # bool is an int in Python; `true` is not a confidence.
    if isinstance(confidence, bool) or not isinstance(confidence, int | float):
        raise ValueError("confidence must be a number")
    if not math.isfinite(confidence) or not 0.0 <= confidence <= 1.0:
        raise ValueError(f"confidence must be within 0..1, got {confidence}")
    if not isinstance(reason, str):
        raise ValueError("reason must be a string")
    return PrepassVerdict(should_respond, reason.strip()[:_MAX_REASON_CHARS], float(confidence))


def chat_size(members: Iterable[Member | str]) -> int:
    """How many take part in the chat, the human included (whether listed or not)."""
    slugs = {m if isinstance(m, str) else m.slug for m in members}
    return len(slugs | {USER})


def fatigue_penalty(
    history: Sequence[GroupMessage],
    character: str,
    members: Iterable[Member | str],
    *,
    window: int = PENALTY_WINDOW,
    per_exchange: float = PENALTY_PER_EXCHANGE,
    cap: float = MAX_PENALTY,
) -> float:
    """The confidence taken off for back-and-forth with the speaker of the last message.

    0.2 per time `character` answered that speaker within the last six messages (the message
    being judged included), at most 0.8; zero in a chat of two (one character and the human),
    where back-and-forth is the point. `members` may list the human or not.
    """
    if not history or chat_size(members) <= 2:
        return 0.0
    count = exchanges_with(history, character, history[-1].speaker, window)
    return min(count * per_exchange, cap)


def decide_from_prepass(
    parsed: PrepassVerdict | Mapping[str, Any],
    penalty: float,
    threshold: float = DEFAULT_THRESHOLD,
    *,
    character: str = "",
) -> Decision:
    """Speak when the model said yes and its confidence minus the penalty reaches the threshold.

    Both must hold: a "no" with high confidence is still a no, and a "yes" that fatigue pulls
    below the threshold is silenced. An answer of the wrong shape is a silent decision.
    """
    try:
        verdict = parsed if isinstance(parsed, PrepassVerdict) else parse_prepass(parsed)
    except ValueError as error:
        return silent_prepass(character, f"pre-pass answer unusable: {error}", penalty, threshold)
    score = verdict.confidence - penalty
    arithmetic = f"confidence {fmt(verdict.confidence)} - penalty {fmt(penalty)} = {fmt(score)}"
    reaches = score >= threshold
    comparison = f"{arithmetic} {'≥' if reaches else 'below'} {fmt(threshold)}"
    speak = reaches and verdict.should_respond
    if speak:
        reason = f"pre-pass yes: {comparison}"
    elif verdict.should_respond:
        reason = f"pre-pass yes, but fatigue wins: {comparison}"
    else:
        reason = f"pre-pass no: {comparison}"
    if verdict.reason:
        reason += f"; model: {verdict.reason}"
    return Decision(
        character=character,
        speak=speak,
        policy=ReplyPolicy.PREPASS,
        reason=reason,
        numbers={
            "confidence": verdict.confidence,
            "penalty": penalty,
            "score": score,
            "threshold": threshold,
            "should_respond": 1.0 if verdict.should_respond else 0.0,
        },
    )


def silent_prepass(character: str, reason: str, penalty: float, threshold: float) -> Decision:
    """The decision when the pre-pass cannot be trusted: stay quiet and say why."""
    return Decision(
        character=character,
        speak=False,
        policy=ReplyPolicy.PREPASS,
        reason=reason,
        numbers={"penalty": penalty, "threshold": threshold, "error": 1.0},
    )


def _transcript(history: Sequence[GroupMessage], members: Sequence[Member]) -> str:
    lines = []
    for message in history:
        extras = [
            flag for flag, on in (("media", message.has_media), ("link", message.has_link)) if on
        ]
        suffix = f"  [{', '.join(extras)}]" if extras else ""
        text = " ".join(message.text.split())  # one line per message keeps speakers unambiguous
        lines.append(f"- {display_name(members, message.speaker)}: {text}{suffix}")
    return "\n".join(lines) or "- (no messages yet)"


def build_prepass_messages(
    character: Member,
    history: Sequence[GroupMessage],
    members: Sequence[Member],
    *,
    penalty: float | None = None,
    threshold: float = DEFAULT_THRESHOLD,
    history_length: int = DEFAULT_HISTORY_LENGTH,
) -> list[ChatMessage]:
    """The pre-pass prompt for `character` on hearing the last message of `history`.

    Pure: the same inputs always give the same messages, so the prompt is testable offline
    and a person sees exactly what was sent.
    """
    if not history:
        raise ValueError("the pre-pass needs a history ending with the message heard")
    if penalty is None:
        penalty = fatigue_penalty(history, character.slug, members)
    message = history[-1]
    speaker = display_name(members, message.speaker)
    me = character.name
    mentioned = sorted(display_name(members, s) for s in parse_mentions(message.text, members))
    exchanges = exchanges_with(history, character.slug, message.speaker, PENALTY_WINDOW)
    roster = ", ".join(["User (the human)", *(f"{m.name} (@{m.slug})" for m in members)])
    system = (
        f"You are the judgement of {me}, a character in a group chat. Someone just spoke. "
        f"Decide whether {me} should answer now. Do not write the answer itself.\n\n"
        "How to judge:\n"
        f"- A message addressed to someone else (by name or @mention) is theirs to answer. "
        f"Stay out of it unless {me} knows something they urgently need; keep confidence "
        "under 0.3 when interrupting.\n"
        "- A question or remark to the whole room invites everyone: if "
        f"{me} has something of their own to add, confidence may be above 0.7.\n"
        f"- A message naming {me} usually deserves an answer.\n"
        "- Conversations should be allowed to end. After several exchanges with the same "
        f"person, {me} loses interest and leaves room for the others.\n"
        f"- Judge only by {me}'s persona below; invent nothing beyond it.\n\n"
        'Answer with one JSON object: {"should_respond": true or false, "reason": one short '
        'sentence, "confidence": a number from 0 to 1 for how much ' + me + " wants to speak}. "
        f"A fatigue penalty is subtracted from the confidence; {me} speaks only if confidence "
        f"minus penalty is at least {fmt(threshold)}."
    )
    persona = character.persona.strip() or "(no description)"
    recent = history[-history_length:] if history_length > 0 else history[-1:]
    user = (
        f"Character: {me} (@{character.slug})\n"
        f"Persona: {persona}\n"
        f"Members: {roster}\n\n"
        f"Recent messages, oldest first:\n{_transcript(recent, members)}\n\n"
        f"The latest message is from {speaker}.\n"
        f"Named in it: {', '.join(mentioned) if mentioned else 'nobody'}.\n"
        f"Fatigue: {me} answered {speaker} {exchanges} time(s) in the last {PENALTY_WINDOW} "
        f"messages; penalty {fmt(penalty)}.\n\n"
        f"Should {me} answer now?"
    )
    return [ChatMessage("system", system), ChatMessage("user", user)]


async def run_prepass(
    model: ChatModel,
    profile: LLMProfile,
    character: Member,
    history: Sequence[GroupMessage],
    members: Sequence[Member],
    *,
    threshold: float = DEFAULT_THRESHOLD,
    history_length: int = DEFAULT_HISTORY_LENGTH,
    retry: calls.RetryPolicy = calls.DEFAULT_RETRY,
) -> tuple[Decision, CallRecord | None]:
    """Ask the model whether `character` answers the last message; never raises an LLMError.

    A failed call or an unusable answer is a silent decision whose reason names the error; the
    CallRecord (with every attempt) comes with it, so the decision node shows the call.
    """
    penalty = fatigue_penalty(history, character.slug, members)
    messages = build_prepass_messages(
        character,
        history,
        members,
        penalty=penalty,
        threshold=threshold,
        history_length=history_length,
    )
    slug = character.slug
    result = await calls.structured(
        model,
        messages,
        profile,
        PREPASS_SCHEMA,
        check=_problems,
        max_attempts=1,
        policy=retry,
        schema_name=PREPASS_SCHEMA_NAME,
        what="pre-pass answer",
    )
    if isinstance(result, calls.Failure):
        what = "answer unusable" if result.kind == "invalid" else "call failed"
        reason = f"pre-pass {what}, staying silent: {result.detail}"
        return silent_prepass(slug, reason, penalty, threshold), result.record
    return decide_from_prepass(result.value, penalty, threshold, character=slug), result.record


def _problems(value: Any) -> list[str]:
    try:
        parse_prepass(value)
    except ValueError as exc:
        return [str(exc)]
    return []
