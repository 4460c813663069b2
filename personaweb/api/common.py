"""Helpers every router shares: the caller, owned objects, refusals as JSON, form fields."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from django.contrib.auth.models import User
from django.http import HttpRequest, QueryDict

from personaweb.api.schemas import Error
from personaweb.compare.models import Comparison
from personaweb.web.actions import Refused
from personaweb.web.models import Character, ChatSession

ERRORS: dict[int, Any] = {status: Error for status in (400, 401, 403, 404, 409, 413, 422)}
"""The error statuses every operation documents, all with the same body."""


def caller(request: HttpRequest) -> User:
    """The authenticated person (auth.py put them on the request)."""
    user = getattr(request, "auth", None)
    assert isinstance(user, User), "every operation is authenticated"
    return user


NODE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a node id can be (imports keep such ids); anything else is no node at all."""


def node_id_of(raw: str) -> str:
    if not NODE_ID.fullmatch(raw):
        raise Refused("no such node", 404)
    return raw


async def session_of(request: HttpRequest, pk: int) -> ChatSession:
    """The caller's session, or a 404 (also for someone else's)."""
    session = (
        await ChatSession.objects.select_related("character")
        .filter(pk=pk, owner_id=caller(request).pk)
        .afirst()
    )
    if session is None:
        raise Refused("no such session", 404)
    return session


def character_of(request: HttpRequest, pk: int) -> Character:
    character = Character.objects.filter(pk=pk, owner=caller(request)).first()
    if character is None:
        raise Refused("no such character", 404)
    return character


async def comparison_of(request: HttpRequest, pk: int) -> Comparison:
    comparison = (
        await Comparison.objects.select_related("character")
        .filter(pk=pk, owner_id=caller(request).pk)
        .afirst()
    )
    if comparison is None:
        raise Refused("no such comparison", 404)
    return comparison


def form_data(
    fields: Mapping[str, Any], lists: Mapping[str, Iterable[Any]] | None = None
) -> QueryDict:
    """JSON turned into the form fields the pages post, so both go through the same code."""
    data = QueryDict(mutable=True)
    for key, value in fields.items():
        if value is None:
            continue
        data[key] = "on" if value is True else "off" if value is False else str(value)
    for key, values in (lists or {}).items():
        data.setlist(key, [str(v) for v in values])
    return data


def form_errors(errors: Mapping[str, Any]) -> str:
    """A form's errors as one sentence."""
    parts = []
    for field, messages in errors.items():
        text = " ".join(str(m) for m in messages)
        parts.append(text if field == "__all__" else f"{field}: {text}")
    return " ".join(parts) or "the request does not check out"
