"""Template context shared by every page."""

from __future__ import annotations

import os

from django.http import HttpRequest

from personaweb.llm.embedded import read_status


def embedded_health(request: HttpRequest) -> dict[str, object]:
    """`embedded_down`: the embedded model server's death report while it is down (the
    launcher writes it; see personaweb/launch.py), so every page says so plainly."""
    status = read_status(os.environ.get("PERSONAWEB_EMBEDDED_STATUS"))
    return {"embedded_down": status if status is not None and status.dead else None}
