"""A comparison as JSON (everything) or CSV (one row per reply), for spreadsheets and notebooks."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from personaweb.compare import metrics
from personaweb.compare.models import Comparison, Vote
from personaweb.compare.views import owned
from personaweb.web.views import AuthedRequest

CSV_FIELDS = (
    "line_index",
    "user_line",
    "contender",
    "strategy",
    "model",
    "temperature",
    "state",
    "reply",
    "style_probability",
    "style_distance",
    "predicted_character",
    "length_words",
    "llm_calls",
    "tokens",
    "latency_s",
    "alignment",
    "votes",
    "judge_score",
    "error",
)


def _round(value: float | None, places: int = 4) -> float | None:
    return None if value is None else round(value, places)


def reply_rows(
    comparison: Comparison, columns: list[metrics.Column] | None = None
) -> list[dict[str, Any]]:
    """One dict per (line, contender), lines first, columns in position order."""
    if columns is None:
        columns = metrics.columns(comparison)
    votes = {
        (row["line_index"], row["contender"]): row["n"]
        for row in Vote.objects.filter(comparison=comparison)
        .values("line_index", "contender")
        .annotate(n=Count("pk"))
    }
    rows = []
    for index in range(len(comparison.script)):
        for column in columns:
            turn, contender = column.turns[index], column.contender
            judge = turn.judge or {}
            rows.append(
                {
                    "line_index": index,
                    "user_line": turn.line,
                    "contender": f"{contender.letter}: {contender.label}",
                    "strategy": contender.strategy,
                    "model": contender.model,
                    "temperature": contender.temperature,
                    "state": turn.state,
                    "reply": turn.reply,
                    "style_probability": _round(turn.style.probability if turn.style else None),
                    "style_distance": _round(turn.style.distance if turn.style else None),
                    "predicted_character": turn.style.predicted_slug if turn.style else "",
                    "length_words": turn.length,
                    "llm_calls": turn.calls,
                    "tokens": turn.tokens,
                    "latency_s": _round(turn.latency_s),
                    "alignment": _round(turn.alignment),
                    "votes": votes.get((index, contender.pk), 0),
                    "judge_score": judge.get("score"),
                    "error": turn.error or judge.get("error", ""),
                }
            )
    return rows


def summary(comparison: Comparison) -> dict[str, Any]:
    character = comparison.character
    columns = metrics.columns(comparison)
    return {
        "id": comparison.pk,
        "title": comparison.title,
        "character": {"name": character.name, "slug": character.slug} if character else None,
        "script": list(comparison.script),
        "blind": comparison.blind,
        "created_at": comparison.created_at.isoformat(),
        "contenders": [
            {
                "letter": c.contender.letter,
                "label": c.contender.label,
                "strategy": c.contender.strategy,
                "model": c.contender.model,
                "temperature": c.contender.temperature,
                "session": c.contender.session_id,
                "status": c.status,
                "error": c.error,
                "mean_style_probability": _round(c.mean_probability),
                "mean_style_distance": _round(c.mean_distance),
                "consistency": _round(c.consistency),
                "llm_calls": c.calls,
                "tokens": c.tokens,
                "latency_s": _round(c.latency_s),
                "votes": c.votes,
                "mean_judge_score": _round(c.mean_judge),
            }
            for c in columns
        ],
        "replies": reply_rows(comparison, columns),
    }


def _attachment(response: HttpResponse, name: str) -> HttpResponse:
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response


@require_GET
@login_required
def export_json(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = owned(request, pk)
    body = json.dumps(summary(comparison), indent=2, ensure_ascii=False)
    response = HttpResponse(body, content_type="application/json; charset=utf-8")
    return _attachment(response, f"comparison-{comparison.pk}.json")


def _cell(value: Any) -> Any:
    # LLM output is untrusted: a reply starting with "=" would be a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


@require_GET
@login_required
def export_csv(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = owned(request, pk)
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS)
    writer.writeheader()
    for row in reply_rows(comparison):
        writer.writerow({k: _cell(row[k]) for k in CSV_FIELDS})
    response = HttpResponse(out.getvalue(), content_type="text/csv; charset=utf-8")
    return _attachment(response, f"comparison-{comparison.pk}.csv")
