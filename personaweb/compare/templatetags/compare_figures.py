"""Template filters for a comparison's figures: an estimate with its interval, as text."""

from __future__ import annotations

from django import template

from personaweb.characters.plain_voice import PLAIN_SLUG
from personaweb.compare.stats import Estimate

register = template.Library()

NONE = "\N{EN DASH}"
"""What a figure with nothing behind it reads as."""


@register.filter
def estimate(value: Estimate | None, places: int = 2) -> str:
    """ "0.62 (0.51 to 0.73)"; the figure alone when it has no interval."""
    if value is None:
        return NONE
    if not value.has_interval:
        return f"{value.value:.{places}f}"
    return f"{value.value:.{places}f} ({value.low:.{places}f} to {value.high:.{places}f})"


@register.filter
def share(value: Estimate | None) -> str:
    """ "58% (32% to 81%)" for a vote share."""
    if value is None:
        return NONE
    if not value.has_interval:
        return f"{value.value:.0%}"
    return f"{value.value:.0%} ({value.low:.0%} to {value.high:.0%})"


@register.filter
def speaker(slug: str) -> str:
    """Who the style classifier heard: a character's slug, or plain speech (no voice at all)."""
    return "plain speech" if slug == PLAIN_SLUG else slug
