"""Responses that download as a file: the one place a download names its file."""

from __future__ import annotations

from django.http import HttpResponse
from django.utils.http import content_disposition_header

JSON = "application/json; charset=utf-8"


def attachment(body: str | bytes, filename: str, content_type: str = JSON) -> HttpResponse:
    """`body` as a download called `filename` (quoted, or RFC 5987-encoded when not ASCII)."""
    response = HttpResponse(body, content_type=content_type)
    response.headers["Content-Disposition"] = content_disposition_header(True, filename)
    return response
