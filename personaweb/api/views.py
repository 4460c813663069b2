"""The API tokens page: make a token (shown once), see yours, revoke one."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from personaweb.api import tokens
from personaweb.api.models import ApiToken
from personaweb.web.access import AuthedRequest, refuse
from personaweb.web.ids import parse_pk


def _page(
    request: AuthedRequest, *, secret: str = "", error: str = "", status: int = 200
) -> HttpResponse:
    return render(
        request,
        "api/tokens.html",
        {
            "tokens": ApiToken.objects.filter(owner=request.user),
            "secret": secret,
            "error": error,
            "max_name": tokens.MAX_NAME,
        },
        status=status,
    )


@require_GET
@login_required
def token_list(request: AuthedRequest) -> HttpResponse:
    return _page(request)


@require_POST
@login_required
def token_create(request: AuthedRequest) -> HttpResponse:
    try:
        made = tokens.create(request.user, request.POST.get("name", ""))
    except ValueError as exc:
        return _page(request, error=str(exc), status=409)
    # Rendered, not redirected: the secret exists only in this response.
    response = _page(request, secret=made.secret)
    response["Cache-Control"] = "no-store"
    return response


@require_POST
@login_required
def token_revoke(request: AuthedRequest, pk: int) -> HttpResponse:
    if parse_pk(pk) is None or not tokens.revoke(request.user, pk):
        return refuse("no such token", 404)
    return redirect("api_tokens")
