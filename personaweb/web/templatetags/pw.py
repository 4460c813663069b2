"""Template helpers shared by the page and the consumer's fragments."""

from __future__ import annotations

import json
import re

from django import template
from django.conf import settings
from django.utils.html import format_html
from django.utils.safestring import mark_safe

from personaweb.web import groups
from personaweb.web.panes import GLYPHS

register = template.Library()

_GLYPH_HTML = {
    status: format_html('<span class="glyph st-{}" title="{}">{}</span>', status, name, glyph)
    for status, (glyph, name) in GLYPHS.items()
}


@register.simple_tag
def glyph(status) -> str:
    """The status glyph, coloured by CSS class st-<status>; identical in every pane."""
    return _GLYPH_HTML.get(str(status), _GLYPH_HTML["recorded"])


@register.simple_tag
def node_glyph(status, node_id, oob: bool = False) -> str:
    """A step-tree row's glyph, with an id so a live frame can swap it alone."""
    glyph, name = GLYPHS.get(str(status), GLYPHS["recorded"])
    return format_html(
        '<span id="g-{}" class="glyph st-{}" title="{}"{}>{}</span>',
        node_id,
        status,
        name,
        mark_safe(' hx-swap-oob="true" data-pw-optional') if oob else "",
        glyph,
    )


@register.filter
def status_name(status) -> str:
    return GLYPHS.get(str(status), ("", str(status)))[1]


@register.filter
def pretty_json(value) -> str:
    """JSON for display (escaped by autoescape like any other text)."""
    return json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)


@register.filter
def last_part(path: str) -> str:
    return str(path).rpartition("/")[2]


@register.filter
def verdict(data) -> str:
    """A decision node's verdict: speaks, waits or silent."""
    return groups.verdict(data or {})


@register.filter
def decision_facts(data) -> str:
    """A decision's key numbers in one line (heat vs threshold, fatigue, confidence)."""
    return groups.decision_facts(data or {})


@register.filter
def decision_numbers(data) -> list[tuple[str, str]]:
    """Every number of a decision, formatted, key ones first."""
    return groups.decision_numbers(data or {})


@register.filter
def number(value, digits: int = 2) -> str:
    """A number for an HTML attribute or a table cell: always a dot, never localised."""
    try:
        return f"{float(value):.{int(digits)}f}"
    except (TypeError, ValueError):
        return ""


@register.filter
def trace_link(trace) -> str:
    """Where a node's span is in the person's tracing backend (settings.TRACE_URL), or ""."""
    url = settings.TRACE_URL
    if not url or not isinstance(trace, dict):
        return ""
    trace_id, span_id = trace.get("trace_id"), trace.get("span_id")
    # A session file may hold anything here: only real ids go into a link.
    if not isinstance(trace_id, str) or not re.fullmatch(r"[0-9a-f]{32}", trace_id):
        return ""
    if not isinstance(span_id, str) or not re.fullmatch(r"[0-9a-f]{16}", span_id):
        span_id = ""
    return url.replace("{trace_id}", trace_id).replace("{span_id}", span_id)


@register.filter
def num(value) -> str:
    """An integer with thousands separators (2,048), the same whatever the locale."""
    try:
        return f"{int(value):,}"
    except (TypeError, ValueError):
        return ""
