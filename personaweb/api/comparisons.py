"""Comparisons over HTTP: create one (its contenders start playing at once), read it and its
results, vote in blind mode, reveal the labels.

The same code as the Compare pages: the form validates (ComparisonForm and its contender
formset, fed the JSON as form fields), `running.start` plays the script, results and votes are
the page's. Blind mode hides the same things as the page: contenders' labels and every figure
until the caller has voted on every line or revealed them; the replies stay readable (one
needs them to vote), under their letters.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.models import User
from django.http import HttpRequest
from ninja import Router
from ninja.responses import Status

from personaweb.api import schemas
from personaweb.api.common import ERRORS, caller, comparison_of, form_data, form_errors
from personaweb.compare import exports, metrics, running
from personaweb.compare.forms import PREFIX, ComparisonForm, contender_formset
from personaweb.compare.models import Comparison, Vote
from personaweb.compare.setup import create_comparison
from personaweb.compare.views import _labels_shown, cast_vote
from personaweb.web.access import ensure_characters
from personaweb.web.actions import Refused

router = Router(tags=["comparisons"])

HIDDEN = ("contender", "strategy", "model", "temperature")
"""What a reply row of a blind comparison leaves out until its labels are shown."""


def _votes(comparison: Comparison, user: User) -> dict[int, int]:
    """The person's vote per line index: the contender's id."""
    mine = Vote.objects.filter(comparison=comparison, voter=user)
    return dict(mine.values_list("line_index", "contender_id"))


def _shown(comparison: Comparison, user: User) -> bool:
    return _labels_shown(comparison, _votes(comparison, user))


def comparison_out(comparison: Comparison, user: User) -> dict[str, Any]:
    shown = _shown(comparison, user)
    return {
        "id": comparison.pk,
        "title": comparison.title,
        "character": comparison.character_id,
        "script": list(comparison.script),
        "samples": comparison.samples,
        "blind": comparison.blind,
        "revealed": comparison.revealed,
        "labels_shown": shown,
        "created_at": comparison.created_at,
        "contenders": [
            {
                "id": c.pk,
                "letter": c.letter,
                "label": c.label if shown else None,
                "session": c.session_id,
                "error": c.error,
            }
            for c in comparison.contenders.order_by("position")
        ],
    }


@router.get(
    "/comparisons",
    response={200: list[schemas.ComparisonOut], **ERRORS},
    operation_id="list_comparisons",
)
def list_comparisons(request: HttpRequest) -> Any:
    user = caller(request)
    return [comparison_out(c, user) for c in Comparison.objects.filter(owner=user)]


def _create(user: User, body: schemas.ComparisonIn) -> Comparison:
    ensure_characters(user)
    if any("\n" in line or "\r" in line for line in body.script):
        raise Refused("a script line holds no line break: give each line as its own item", 400)
    fields: dict[str, Any] = {
        "character": body.character,
        "title": body.title,
        "script": "\n".join(body.script),
        "samples": body.samples if body.samples is not None else "",
        "blind": body.blind,
        f"{PREFIX}-TOTAL_FORMS": len(body.contenders),
        f"{PREFIX}-INITIAL_FORMS": 0,
    }
    for i, contender in enumerate(body.contenders):
        fields |= {
            f"{PREFIX}-{i}-strategy": contender.strategy,
            f"{PREFIX}-{i}-model": contender.model,
            f"{PREFIX}-{i}-temperature": contender.temperature,
        }
    data = form_data(fields)
    if not body.blind:
        del data["blind"]  # an unticked checkbox is absent from a form
    form, formset = ComparisonForm(data, owner=user), contender_formset(data)
    if not (form.is_valid() and formset.is_valid()):
        errors = dict(form.errors)
        for i, row in enumerate(formset.errors):
            errors |= {f"contenders[{i}].{k}": v for k, v in row.items()}
        if formset.non_form_errors():
            errors["contenders"] = formset.non_form_errors()
        raise Refused(form_errors(errors), 400)
    cleaned = form.cleaned_data
    return create_comparison(
        user,
        cleaned["character"],
        cleaned["script"],
        [f.spec() for f in formset.forms],
        blind=cleaned["blind"],
        title=cleaned["title"].strip(),
        samples=cleaned["samples"],
    )


@router.post(
    "/comparisons",
    response={201: schemas.ComparisonOut, **ERRORS},
    operation_id="create_comparison",
)
async def create(request: HttpRequest, body: schemas.ComparisonIn) -> Any:
    """A new comparison: its contenders start playing the script at once (read its progress
    and results with GET; each contender's session streams like any other)."""
    user = caller(request)
    comparison = await sync_to_async(_create)(user, body)
    await running.start(comparison)
    return Status(201, await sync_to_async(comparison_out)(comparison, user))


@router.get(
    "/comparisons/{int:pk}",
    response={200: schemas.ComparisonOut, **ERRORS},
    operation_id="get_comparison",
)
async def get_comparison(request: HttpRequest, pk: int) -> Any:
    comparison = await comparison_of(request, pk)
    return await sync_to_async(comparison_out)(comparison, caller(request))


def _results(comparison: Comparison, user: User) -> dict[str, Any]:
    if _shown(comparison, user):
        return exports.summary(comparison)
    rows = exports.reply_rows(comparison, metrics.columns(comparison))
    letters = {f"{c.letter}: {c.label}": c.letter for c in comparison.contenders.all()}
    return {
        "id": comparison.pk,
        "blind": True,
        "labels_shown": False,
        "script": list(comparison.script),
        "my_votes": {str(line): pk for line, pk in _votes(comparison, user).items()},
        "replies": [
            {"letter": letters.get(r["contender"], "?")}
            | {k: v for k, v in r.items() if k not in HIDDEN and not k.startswith("style")}
            for r in rows
        ],
    }


@router.get(
    "/comparisons/{int:pk}/results",
    response={200: dict[str, Any], **ERRORS},
    operation_id="comparison_results",
)
async def results(request: HttpRequest, pk: int) -> Any:
    """Everything the page's JSON export holds: figures with 95% intervals, the sentences, and
    every reply. A blind comparison shows only its replies (by letter) until you have voted on
    every line or revealed the labels."""
    comparison = await comparison_of(request, pk)
    return await sync_to_async(_results)(comparison, caller(request))


@router.post(
    "/comparisons/{int:pk}/votes", response={201: schemas.VoteOut, **ERRORS}, operation_id="vote"
)
async def vote(request: HttpRequest, pk: int, body: schemas.VoteIn) -> Any:
    """Blind mode: your pick of the best reply to one line (a second vote replaces it)."""
    comparison = await comparison_of(request, pk)
    cast = await sync_to_async(cast_vote)(comparison, caller(request), body.line, body.contender)
    return Status(201, {"line": cast.line_index, "contender": cast.contender_id})


@router.post(
    "/comparisons/{int:pk}/reveal",
    response={200: schemas.ComparisonOut, **ERRORS},
    operation_id="reveal",
)
async def reveal(request: HttpRequest, pk: int) -> Any:
    """Blind mode: show the labels (and the figures) now."""
    comparison = await comparison_of(request, pk)
    comparison.revealed = True
    await comparison.asave(update_fields=["revealed"])
    return await sync_to_async(comparison_out)(comparison, caller(request))
