"""Who may see what, and how a refusal looks: shared by every app's views.

One rule everywhere: another person's session (or character, or comparison) is a 404, exactly
like a missing one, so nobody learns which ids exist. Refusals are plain text, never HTML.
"""

from __future__ import annotations

from django.contrib.auth.models import User
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404
from django_htmx.middleware import HtmxDetails

from personaweb.characters.sheet import CharacterError, load_bundled
from personaweb.web.models import Character, ChatSession


class AuthedRequest(HttpRequest):
    """What the login_required views get: a real user, and django-htmx's details."""

    user: User
    htmx: HtmxDetails


def refuse(message: str, status: int = 409) -> HttpResponse:
    """A refusal the page shows as a message (plain text, never HTML)."""
    return HttpResponse(message, status=status, content_type="text/plain; charset=utf-8")


def owned_session(request: AuthedRequest, pk: int) -> ChatSession:
    return get_object_or_404(
        ChatSession.objects.select_related("character", "owner"), pk=pk, owner=request.user
    )


async def aowned_session(request: AuthedRequest, pk: int) -> ChatSession:
    user = await request.auser()  # login_required has made sure it is a real user
    try:
        return await ChatSession.objects.select_related("character", "owner").aget(
            pk=pk, owner_id=user.pk
        )
    except ChatSession.DoesNotExist:
        raise Http404("no such session") from None


def ensure_characters(user) -> None:
    """Give a person the bundled characters the first time they need one."""
    if Character.objects.filter(owner=user).exists():
        return
    try:
        sheets = load_bundled()
    except CharacterError:
        sheets = []
    Character.objects.bulk_create(
        [Character(owner=user, name=s.name, slug=s.slug, data=s.to_dict()) for s in sheets]
    )
