"""The JSON API: one NinjaAPI at /api/, its OpenAPI document at /api/openapi.json and the
interactive docs (Swagger UI, served from django-ninja's own static files) at /api/docs.

Why django-ninja: its operations may be `async def`, so actions that start runs are awaited on
the server's own event loop under daphne, as the pages' async views do (a run started from a
sync view would die with the thread's loop); its schemas are pydantic models, from which the
OpenAPI 3 document is generated; and it ships Swagger UI's assets, so the docs page needs no
CDN. Django REST framework's views are synchronous (async needs a third-party add-on).

Errors are JSON, `{"detail": ...}`, always 4xx for bad input: a refusal of an action keeps
its status (400, 404, 409), a body that does not parse is a 400, one that does not validate a
422, a body over Django's upload limit a 413, a missing or wrong token a 401, a failed CSRF
check (cookie sessions only) a 403.
"""

from __future__ import annotations

from typing import Any

from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from ninja import NinjaAPI
from ninja.parser import Parser

from personaweb.api import characters, comparisons, sessions, training
from personaweb.api.auth import AUTH
from personaweb.characters.safejson import loads
from personaweb.web.actions import Refused


class SafeParser(Parser):
    """JSON as the card reader takes it: no NaN or infinities, no lone surrogates or NUL
    (what the database cannot store, or PostgreSQL refuses)."""

    def parse_body(self, request: HttpRequest) -> Any:
        return loads(request.body, "the request body")


api = NinjaAPI(
    title="PersonaWeb API",
    version="1",
    description=(
        "Everything the pages do, for scripts: sessions, messages, the step tree, review "
        "actions, annotations, characters and cards, comparisons and votes, training data. "
        "Authenticate with `Authorization: Bearer <token>` (make one on the API tokens page)."
    ),
    urls_namespace="api",
    auth=AUTH,
    parser=SafeParser(),
    docs_url="/docs",
    openapi_url="/openapi.json",
)
api.add_router("/", sessions.router)
api.add_router("/", characters.router)
api.add_router("/", comparisons.router)
api.add_router("/", training.router)


@api.exception_handler(Refused)
def refused(request: HttpRequest, exc: Refused) -> HttpResponse:
    return api.create_response(request, {"detail": exc.message}, status=exc.status)


@api.exception_handler(RequestDataTooBig)
def too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    return api.create_response(request, {"detail": "the request body is too large"}, status=413)


def not_found(request: HttpRequest) -> HttpResponse:
    """Any other path under /api/ (a malformed id too): a JSON 404, like the API's own."""
    return JsonResponse({"detail": "Not Found"}, status=404)
