"""The optional LLM judge: the configured model rates each reply's voice, 0..1, with a reason.

A second opinion beside the local style metric, not a replacement: it costs calls, varies
with the model, and may well know the play the character is drawn from. Verdicts are stored
on the contender by line; a failed call is stored as its error and shown in the cell.
"""

from __future__ import annotations

import asyncio
from typing import Any

from asgiref.sync import sync_to_async

from personaweb.compare import metrics
from personaweb.compare.models import Comparison
from personaweb.llm import calls
from personaweb.llm.types import ChatMessage, ChatModel, LLMProfile
from personaweb.web import building

JUDGE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "score": {"type": "number", "minimum": 0, "maximum": 1},
        "reason": {"type": "string", "maxLength": 400},
    },
    "required": ["score", "reason"],
    "additionalProperties": False,
}
PROFILE = LLMProfile(temperature=0.0, max_tokens=200)
CONCURRENCY = 4


def judge_prompt(name: str, sample_lines: list[str]) -> str:
    samples = "\n".join(f"- {line}" for line in sample_lines[:25]) or "- (none given)"
    return (
        f"You rate how closely one line of dialogue matches {name}'s voice.\n"
        f"Here is how {name} talks:\n{samples}\n\n"
        "Judge only the voice: vocabulary, rhythm, dialect, attitude. Answer with one JSON "
        'object: {"score": 0 to 1 (1 = unmistakably them), "reason": one short sentence}.'
    )


async def _rate(model: ChatModel, system: str, line: str, reply: str) -> dict[str, Any]:
    messages = [
        ChatMessage("system", system),
        ChatMessage("user", f"They were told: {line}\nThey answered: {reply}"),
    ]
    result = await calls.structured(
        model, messages, PROFILE, JUDGE_SCHEMA, schema_name="voice_rating", what="rating"
    )
    if isinstance(result, calls.Failure):
        return {"error": result.reason}
    value = result.value
    return {"score": float(value["score"]), "reason": str(value["reason"])[:400]}


async def judge(comparison: Comparison) -> None:
    """Rate every finished reply of every contender; store verdicts and any overall error."""
    character = comparison.character
    if character is None:
        comparison.judge_error = "the character was deleted"
        await comparison.asave(update_fields=["judge_error"])
        return
    system = judge_prompt(character.name, list(character.data.get("sample_lines") or []))
    columns = await sync_to_async(metrics.columns)(comparison)
    try:
        model = building.chat_model()
    except Exception as exc:  # a misconfigured endpoint: say so on the page
        comparison.judge_error = f"no model to judge with: {exc}"
        await comparison.asave(update_fields=["judge_error"])
        return
    gate = asyncio.Semaphore(CONCURRENCY)

    async def rate(line: str, reply: str) -> dict[str, Any]:
        async with gate:
            return await _rate(model, system, line, reply)

    failures = 0
    for column in columns:
        done = [t for t in column.turns if t.done and t.reply.strip()]
        verdicts = await asyncio.gather(*(rate(t.line, t.reply) for t in done))
        contender = column.contender
        contender.judge = {
            **contender.judge,
            **{str(t.index): v for t, v in zip(done, verdicts, strict=True)},
        }
        failures += sum("error" in v for v in verdicts)
        await contender.asave(update_fields=["judge"])
    comparison.judge_error = f"{failures} rating(s) failed; see the cells" if failures else ""
    await comparison.asave(update_fields=["judge_error"])
