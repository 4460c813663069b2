"""A comparison as JSON (everything), as CSV (one row per reply: every sample of every line) and
as a CSV of its figures (one row per contender and figure, with 95% intervals), for
spreadsheets and notebooks. The figures are results.py's, the same the page and the charts
show."""

from __future__ import annotations

import csv
import io
import json
from typing import Any

from django.contrib.auth.decorators import login_required
from django.db.models import Count
from django.http import HttpResponse
from django.views.decorators.http import require_GET

from personaweb.compare import metrics, results
from personaweb.compare.models import Comparison, Vote
from personaweb.compare.stats import Estimate
from personaweb.compare.views import owned
from personaweb.web.access import AuthedRequest
from personaweb.web.downloads import attachment

CSV = "text/csv; charset=utf-8"
CSV_FIELDS = (
    "line_index",
    "sample",
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
    """One dict per reply: lines first, then columns in position order, then samples."""
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
            contender = column.contender
            main = column.turns[index]
            for turn in main.every_sample:
                # Votes and the judge concern the line's shown reply, sample 1.
                judge = (main.judge or {}) if turn is main else {}
                rows.append(
                    {
                        "line_index": index,
                        "sample": turn.sample,
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
                        "votes": votes.get((index, contender.pk), 0) if turn is main else 0,
                        "judge_score": judge.get("score"),
                        "error": turn.error or judge.get("error", ""),
                    }
                )
    return rows


def _estimate(value: Estimate | None) -> dict[str, Any] | None:
    return value.to_dict() if value is not None else None


FIGURES = (
    ("style_score", "score"),
    ("style_distance", "distance"),
    ("llm_calls_per_reply", "calls"),
    ("tokens_per_reply", "tokens"),
    ("latency_s_per_reply", "latency_s"),
    ("vote_share", "vote_share"),
    ("bradley_terry_strength", "strength"),
)
"""(export name, ContenderResult attribute) of every figure with an interval."""


def figures(found: results.Results) -> dict[str, Any]:
    """The results as JSON: per contender its figures, the differences and their sentences."""
    return {
        "lines": found.lines,
        "samples_per_line": found.samples,
        "votes": found.votes,
        "baseline": found.baseline.letter if found.baseline else None,
        "sentences": found.sentences,
        "contenders": [
            {
                "letter": r.letter,
                "name": r.name,
                "answered": r.answered,
                **{name: _estimate(getattr(r, attr)) for name, attr in FIGURES},
                "style_score_per_line": [_estimate(e) for e in r.per_line],
            }
            for r in found.contenders
        ],
        "differences": [
            {
                "contender": d.contender.letter,
                "baseline": d.baseline.letter,
                "style_score": _estimate(d.score),
                "head_to_head_share": _estimate(d.head_to_head),
                "head_to_head_votes": d.head_to_head_votes,
                "sentence": d.sentence,
            }
            for d in found.differences
        ],
        "ranking": [r.letter for r in found.ranking],
    }


def summary(comparison: Comparison) -> dict[str, Any]:
    character = comparison.character
    columns = metrics.columns(comparison)
    found = results.build(comparison, columns)
    return {
        "id": comparison.pk,
        "title": comparison.title,
        "character": {"name": character.name, "slug": character.slug} if character else None,
        "script": list(comparison.script),
        "samples": comparison.samples,
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
        "figures": figures(found),
        "replies": reply_rows(comparison, columns),
    }


FIGURE_FIELDS = (
    "contender",
    "strategy",
    "model",
    "temperature",
    "figure",
    "value",
    "low",
    "high",
    "lines",
    "values",
)


def figure_rows(comparison: Comparison, found: results.Results) -> list[dict[str, Any]]:
    """One row per contender and figure (then per difference), for a spreadsheet."""
    rows = []
    for r in found.contenders:
        c = r.contender
        who = {
            "contender": f"{c.letter}: {c.label}",
            "strategy": c.strategy,
            "model": c.model,
            "temperature": c.temperature,
        }
        per_line = [(f"style_score_line_{i + 1}", e) for i, e in enumerate(r.per_line)]
        for name, value in [(n, getattr(r, a)) for n, a in FIGURES] + per_line:
            if value is not None:
                rows.append({**who, "figure": name, **_figure(value)})
    for d in found.differences:
        c = d.contender.contender
        if d.score is not None:
            rows.append(
                {
                    "contender": f"{c.letter}: {c.label}",
                    "strategy": c.strategy,
                    "model": c.model,
                    "temperature": c.temperature,
                    "figure": f"style_score_minus_{d.baseline.letter}",
                    **_figure(d.score),
                }
            )
    return rows


def _figure(value: Estimate) -> dict[str, Any]:
    data = value.to_dict()
    return {
        "value": data["value"],
        "low": data["low"],
        "high": data["high"],
        "lines": data["lines"],
        "values": data["samples"],
    }


@require_GET
@login_required
def export_json(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = owned(request, pk)
    body = json.dumps(summary(comparison), indent=2, ensure_ascii=False)
    return attachment(body, f"comparison-{comparison.pk}.json")


def _cell(value: Any) -> Any:
    # LLM output is untrusted: a reply starting with "=" would be a formula in a spreadsheet.
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return "" if value is None else value


def write_csv(rows: list[dict[str, Any]], fields: tuple[str, ...]) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=fields)
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _cell(row.get(k)) for k in fields})
    return out.getvalue()


@require_GET
@login_required
def export_csv(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = owned(request, pk)
    body = write_csv(reply_rows(comparison), CSV_FIELDS)
    return attachment(body, f"comparison-{comparison.pk}.csv", CSV)


@require_GET
@login_required
def export_figures_csv(request: AuthedRequest, pk: int) -> HttpResponse:
    comparison = owned(request, pk)
    found = results.build(comparison, metrics.columns(comparison))
    body = write_csv(figure_rows(comparison, found), FIGURE_FIELDS)
    return attachment(body, f"comparison-{comparison.pk}-figures.csv", CSV)
