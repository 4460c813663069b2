"""The training-data page: choose a scope and filters, download JSON Lines."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.http import HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.views.decorators.http import require_GET

from personaweb.training import exports
from personaweb.web.access import AuthedRequest, refuse
from personaweb.web.downloads import attachment
from personaweb.web.models import Character, ChatSession

CONTENT_TYPE = "application/jsonl; charset=utf-8"


def download(owner: User, kind: str, raw: Mapping[str, Any]) -> HttpResponseBase:
    """The records of one kind as a JSONL attachment (the page's links and the API)."""
    if kind not in exports.KINDS:
        return refuse(f"no such kind of training data: {kind!r}", 404)
    try:
        filters = exports.Filters.parse(owner, raw)
    except exports.FilterError as exc:
        return refuse(str(exc), exc.status)
    # Built whole: the records come from the database, which a response iterated on the
    # server's event loop must not touch.
    body = "".join(exports.jsonl(exports.records(owner, kind, filters)))
    return attachment(body, exports.filename(kind, filters), CONTENT_TYPE)


@require_GET
@login_required
def training_page(request: AuthedRequest) -> HttpResponse:
    return render(
        request,
        "training/page.html",
        {
            "kinds": exports.KINDS,
            "sessions": ChatSession.objects.filter(owner=request.user).order_by("-updated_at"),
            "characters": Character.objects.filter(owner=request.user).order_by("name"),
            "chosen": request.GET,
        },
    )


@require_GET
@login_required
def training_download(request: AuthedRequest, kind: str) -> HttpResponseBase:
    return download(request.user, kind, request.GET)
