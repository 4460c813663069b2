"""A persona whose reply is a JSON object: the structured call itself is llm.calls.structured."""

from __future__ import annotations

import json
from typing import Any

from personaweb.llm.types import LLMProfile
from personaweb.personas.persona import BasicPersona, ProposeContext
from personaweb.personas.proposal import ProposedResponse
from personaweb.personas.tree import Action


class StructuredPersona(BasicPersona):
    """A basic persona whose reply is a JSON object valid against a schema. The reply's text is
    the compact JSON; the parsed value is kept in the node's data for display."""

    def __init__(
        self,
        name: str,
        *,
        system_prompt: str,
        schema: dict[str, Any],
        description: str = "",
        profile: LLMProfile | None = None,
        stateless: bool = True,
        max_attempts: int = 3,
        display_name: str = "",
    ) -> None:
        super().__init__(
            name,
            system_prompt=system_prompt,
            description=description,
            profile=profile,
            stateless=stateless,
            display_name=display_name,
        )
        self.schema = schema
        self.max_attempts = max_attempts

    async def propose(self, ctx: ProposeContext) -> ProposedResponse:
        events = ctx.current if self.stateless else ctx.history
        answer = await ctx.ask(
            self.build_messages(events),
            self.profile,
            self.schema,
            max_attempts=self.max_attempts,
            schema_name=self.name,
        )
        text = json.dumps(answer.value, ensure_ascii=False)
        return ProposedResponse(
            ctx.persona, Action.REPLY, text, call=answer.record, data={"value": answer.value}
        )
