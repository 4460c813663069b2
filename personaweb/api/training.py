"""Training data over HTTP: the same JSON Lines as the Training data page, the same filters."""

from __future__ import annotations

from datetime import date
from typing import Any, Literal

from django.http import HttpRequest, HttpResponse
from ninja import Query, Router, Schema
from pydantic import Field

from personaweb.api.common import ERRORS, caller
from personaweb.training import exports
from personaweb.training.views import download
from personaweb.web.actions import Refused

router = Router(tags=["training"])

Kind = Literal["preferences", "sft", "votes"]


class TrainingQuery(Schema):
    session: int | None = Field(default=None, ge=1, le=2**63 - 1, description="Only this session")
    character: int | None = Field(
        default=None,
        ge=1,
        le=2**63 - 1,
        description="Only this character's sessions and comparisons",
    )
    persona: str = Field(
        default="", max_length=300, description="This persona path and those under it"
    )
    since: date | None = Field(default=None, description="Decisions on or after this day (UTC)")
    until: date | None = Field(default=None, description="Decisions on or before this day (UTC)")
    auto: bool = Field(default=False, description="sft: include autonomous runs' approvals too")


@router.get(
    "/training/{kind}",
    response={200: None, **ERRORS},
    operation_id="training_data",
    openapi_extra={
        "responses": {
            200: {
                "description": "JSON Lines: one record per line",
                "content": {"application/jsonl": {"schema": {"type": "string"}}},
            }
        }
    },
)
def training_data(request: HttpRequest, kind: Kind, q: Query[TrainingQuery]) -> Any:
    """Your review decisions as training data: `preferences` (prompt / chosen / rejected
    pairs), `sft` (chat-format supervised examples) or `votes` (blind comparison votes as
    pairs). The records' shapes and which nodes make them: see the README's *Training data*."""
    raw = {k: v for k, v in q.model_dump().items() if v not in (None, "", False)}
    response = download(caller(request), kind, raw)
    if response.status_code != 200:
        assert isinstance(response, HttpResponse)  # refusals are plain text
        raise Refused(response.content.decode(), response.status_code)
    return response


__all__ = ["exports", "router"]
