"""Comparison pages: list, new (with re-run), the side-by-side board, votes and reveal.

Every view is the owner's only: another person's comparison is a 404, like a missing one.
Views that start runs are async, so the runs' tasks live on the server's event loop.
"""

from __future__ import annotations

from typing import Any

from asgiref.sync import sync_to_async
from django.contrib.auth.decorators import login_required
from django.contrib.auth.models import User
from django.db import transaction
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.safestring import SafeString, mark_safe
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django_htmx.http import HttpResponseClientRedirect

from personaweb.compare import charts, judging, metrics, results, running
from personaweb.compare.forms import ComparisonForm, contender_formset
from personaweb.compare.models import Comparison, Vote
from personaweb.compare.setup import create_comparison, specs_of
from personaweb.web import recovery, runs
from personaweb.web.access import AuthedRequest, ensure_characters, refuse
from personaweb.web.actions import Refused
from personaweb.web.downloads import attachment
from personaweb.web.ids import parse_index, parse_pk
from personaweb.web.models import ChatSession

TEMPLATE = "compare/detail.html"


def owned(request: AuthedRequest, pk: int) -> Comparison:
    return get_object_or_404(
        Comparison.objects.select_related("character"), pk=pk, owner=request.user
    )


async def aowned(request: AuthedRequest, pk: int) -> Comparison:
    user = await request.auser()
    try:
        return await Comparison.objects.select_related("character").aget(pk=pk, owner_id=user.pk)
    except Comparison.DoesNotExist:
        raise Http404("no such comparison") from None


# --- list and new ---------------------------------------------------------------------------


@require_GET
@login_required
def comparison_list(request: AuthedRequest) -> HttpResponse:
    comparisons = (
        Comparison.objects.filter(owner=request.user)
        .select_related("character")
        .prefetch_related("contenders")
    )
    return render(request, "compare/list.html", {"comparisons": comparisons})


def _initial_from(source: Comparison | None) -> dict[str, Any]:
    if source is None:
        return {}
    return {
        "form": {
            "character": source.character_id,
            "title": "",
            "script": "\n".join(source.script),
            "samples": source.samples,
            "blind": source.blind,
        },
        "contenders": [
            {"strategy": s.strategy, "model": s.model, "temperature": s.temperature}
            for s in specs_of(source)
        ],
    }


def _new_form(request: AuthedRequest) -> tuple[Comparison | None, HttpResponse | None]:
    """Validate (POST) or show (GET) the form. Returns the created comparison, or the page."""
    ensure_characters(request.user)
    if request.method == "POST":
        form = ComparisonForm(request.POST, owner=request.user)
        formset = contender_formset(request.POST)
        if form.is_valid() and formset.is_valid():
            data = form.cleaned_data
            comparison = create_comparison(
                request.user,
                data["character"],
                data["script"],
                [f.spec() for f in formset.forms],
                blind=data["blind"],
                title=data["title"].strip(),
                samples=data["samples"],
            )
            return comparison, None
        status = 400
    else:
        source = None
        if "from" in request.GET:
            # A re-run's form names its source; one that cannot exist is missing, like any other.
            if (source_pk := parse_pk(request.GET["from"])) is None:
                raise Http404("no such comparison")
            source = owned(request, source_pk)
        initial = _initial_from(source)
        form = ComparisonForm(initial=initial.get("form"), owner=request.user)
        formset = contender_formset(initial=initial.get("contenders"))
        status = 200
    page = render(
        request,
        "compare/new.html",
        {"form": form, "formset": formset, "max_contenders": formset.max_num},
        status=status,
    )
    return None, page


@require_http_methods(["GET", "POST"])
@login_required
async def comparison_new(request: AuthedRequest) -> HttpResponse:
    comparison, page = await sync_to_async(_new_form)(request)
    if comparison is None:
        assert page is not None
        return page
    await running.start(comparison)
    return redirect(comparison)


# --- the board ----------------------------------------------------------------------------


def _my_votes(request: AuthedRequest, comparison: Comparison) -> dict[int, int]:
    """This person's vote per line index: the contender id."""
    return dict(
        Vote.objects.filter(comparison=comparison, voter=request.user).values_list(
            "line_index", "contender_id"
        )
    )


def _labels_shown(comparison: Comparison, my_votes: dict[int, int]) -> bool:
    # Blind labels come off on request, or once every line has this person's vote.
    voted_all = len(my_votes) >= len(comparison.script)
    return not comparison.blind or comparison.revealed or voted_all


CHART_TITLES = {
    "score": "Style score per contender",
    "lines": "Style score per script line",
    "cost": "Calls, tokens and latency per reply",
}


def inline_charts(
    comparison: Comparison, found: results.Results
) -> list[tuple[str, str, SafeString]]:
    """(name, title, svg) for the page. The SVG is built in charts.py, which escapes every
    piece of text it writes: that is what makes marking it safe right."""
    script = list(comparison.script)
    return [
        (name, CHART_TITLES[name], mark_safe(charts.chart(name, found, script)))
        for name in charts.CHARTS
    ]


def board_context(request: AuthedRequest, comparison: Comparison, **extra: Any) -> dict:
    columns = metrics.columns(comparison)
    my_votes = _my_votes(request, comparison)
    show_labels = _labels_shown(comparison, my_votes)
    # Figures name the strategies: in blind mode they wait for the labels.
    found = results.build(comparison, columns) if show_labels and columns else None
    if found is not None:
        for column, result in zip(columns, found.contenders, strict=True):
            column.result = result
    rows = [
        {
            "index": i,
            "line": columns[0].turns[i].line if columns else line,
            "cells": [(column, column.turns[i]) for column in columns],
            "my_vote": my_votes.get(i),
        }
        for i, line in enumerate(comparison.script)
    ]
    return {
        "comparison": comparison,
        "columns": columns,
        "rows": rows,
        "show_labels": show_labels,
        "results": found,
        "charts": inline_charts(comparison, found) if found is not None else [],
        "voted": len(my_votes),
        "running": any(c.running for c in columns),
        "resumable": any(not c.running and not c.complete for c in columns),
        "judgeable": any(t.done for c in columns for t in c.turns),
        **extra,
    }


@require_GET
@login_required
def comparison_detail(request: AuthedRequest, pk: int) -> HttpResponse:
    recovery.ensure_recovered()  # a run left by a stopped process shows as interrupted
    comparison = owned(request, pk)
    return render(request, TEMPLATE, board_context(request, comparison))


@require_GET
@login_required
def board(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = owned(request, pk)
    return render(request, f"{TEMPLATE}#board", board_context(request, comparison))


@require_GET
@login_required
def column(request: AuthedRequest, pk: int, contender_pk: int) -> HttpResponse:
    """One contender's head, cells and totals as out-of-band swaps (the live updates)."""
    comparison = owned(request, pk)
    found = metrics.columns(comparison, only=contender_pk)
    if not found:
        raise Http404("no such contender")
    my_votes = _my_votes(request, comparison)
    ctx = {
        "comparison": comparison,
        "column": found[0],
        "cells": [(turn, my_votes.get(turn.index)) for turn in found[0].turns],
        "show_labels": _labels_shown(comparison, my_votes),
        "oob": True,
    }
    return render(request, f"{TEMPLATE}#column-update", ctx)


@require_GET
@login_required
def chart_svg(request: AuthedRequest, pk: int, name: str) -> HttpResponse:
    """One chart as a standalone SVG file (the same document the page inlines)."""
    comparison = owned(request, pk)
    if name not in charts.CHARTS:
        raise Http404("no such chart")
    if not _labels_shown(comparison, _my_votes(request, comparison)):
        return refuse("vote on every line, or reveal the labels, to see the charts", 403)
    found = results.build(comparison, metrics.columns(comparison))
    svg = charts.chart(name, found, list(comparison.script))
    return attachment(svg, f"comparison-{pk}-{name}.svg", "image/svg+xml; charset=utf-8")


def _board_response(request: AuthedRequest, comparison: Comparison) -> HttpResponse:
    if request.htmx:
        return render(request, f"{TEMPLATE}#board", board_context(request, comparison))
    return redirect(comparison)


def cast_vote(comparison: Comparison, voter: User, line: object, contender_id: object) -> Vote:
    """A person's pick of the best reply to one line (the page and the API); a second vote
    on the same line replaces the first."""
    if not comparison.blind:
        raise Refused("votes are for blind comparisons", 400)
    line_index = parse_index(line, len(comparison.script))
    contender_pk = parse_pk(contender_id)
    if line_index is None or contender_pk is None:
        raise Refused("a vote names a line of the script and a contender", 400)
    contender = comparison.contenders.filter(pk=contender_pk).first()
    if contender is None:
        raise Refused("that contender is not in this comparison", 400)
    vote, _ = Vote.objects.update_or_create(
        comparison=comparison,
        line_index=line_index,
        voter=voter,
        defaults={"contender": contender},
    )
    return vote


@require_POST
@login_required
def vote(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = owned(request, pk)
    try:
        cast_vote(
            comparison,
            request.user,
            request.POST.get("line", ""),
            request.POST.get("contender", ""),
        )
    except Refused as exc:
        return refuse(exc.message, exc.status)
    return _board_response(request, comparison)


@require_POST
@login_required
def reveal(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = owned(request, pk)
    comparison.revealed = True
    comparison.save(update_fields=["revealed"])
    return _board_response(request, comparison)


# --- actions that start runs ---------------------------------------------------------------


def _go(request: AuthedRequest, comparison: Comparison) -> HttpResponse:
    if request.htmx:
        return HttpResponseClientRedirect(comparison.get_absolute_url())
    return redirect(comparison)


def _copy(comparison: Comparison) -> Comparison | None:
    character = comparison.character
    if character is None:
        return None
    return create_comparison(
        comparison.owner,
        character,
        list(comparison.script),
        specs_of(comparison),
        blind=comparison.blind,
        title=comparison.title,
        samples=comparison.samples,
    )


@require_POST
@login_required
async def rerun(request: AuthedRequest, pk: int) -> HttpResponse:
    """A new comparison with the same settings (the form at new/?from= changes them)."""
    source = await aowned(request, pk)
    copy = await sync_to_async(_copy)(source)
    if copy is None:
        return refuse("the character of this comparison was deleted; start a new one", 409)
    await running.start(copy)
    return _go(request, copy)


@require_POST
@login_required
async def resume(request: AuthedRequest, pk: int) -> HttpResponse:
    """Continue contenders that stopped short (interrupted by a restart, or failed)."""
    comparison = await aowned(request, pk)
    columns = await sync_to_async(metrics.columns)(comparison)
    stalled = [c.contender.pk for c in columns if not c.running and not c.complete]
    if not stalled:
        return refuse("every contender is finished or still running", 409)
    await running.resume(comparison, stalled)
    return _go(request, comparison)


@require_POST
@login_required
async def judge(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = await aowned(request, pk)
    await judging.judge(comparison)
    if request.htmx:
        ctx = await sync_to_async(board_context)(request, comparison)
        return await sync_to_async(render)(request, f"{TEMPLATE}#board", ctx)
    return redirect(comparison)


@require_POST
@login_required
async def delete(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = await aowned(request, pk)
    sessions = [c.session_id async for c in comparison.contenders.all() if c.session_id]
    if await sync_to_async(runs.any_running)(sessions):
        return refuse("wait for the contenders to finish before deleting", 409)

    def drop() -> None:
        with transaction.atomic():
            ChatSession.objects.filter(pk__in=sessions, owner_id=comparison.owner_id).delete()
            comparison.delete()

    await sync_to_async(drop)()
    if request.htmx:
        return HttpResponseClientRedirect(reverse("compare:list"))
    return redirect("compare:list")
