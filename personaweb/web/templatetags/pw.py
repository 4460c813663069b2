"""Template helpers shared by the page and the consumer's fragments."""

from __future__ import annotations

import json

from django import template
from django.utils.html import format_html

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
