"""Who is calling: a Bearer token (scripts) or the browser's session cookie (the docs page).

The rules:
- `Authorization: Bearer pw_…` names a token (tokens.py); a token call needs no CSRF token, as
  no browser adds that header on its own.
- Without one, the session cookie of a signed-in person is accepted, with Django's CSRF check
  on unsafe methods as on every page (`X-CSRFToken`). A request with neither is a 401.
- Either way the caller is `request.auth`, a User; everything else is ownership as the pages
  apply it (another's object is a 404, like a missing one).
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.http import HttpRequest
from ninja.security import APIKeyCookie, HttpBearer

from personaweb.api import tokens


class BearerToken(HttpBearer):
    openapi_description = "An API token made on the API tokens page: `Authorization: Bearer pw_…`"

    def authenticate(self, request: HttpRequest, token: str) -> Any:
        return tokens.user_for(token)


class SessionCookie(APIKeyCookie):
    """The signed-in person's session, CSRF-checked like the pages."""

    param_name = settings.SESSION_COOKIE_NAME
    openapi_description = "The browser's session (signed in); unsafe methods need X-CSRFToken"

    def _get_key(self, request: HttpRequest) -> str | None:
        # Without a signed-in session there is no CSRF question to ask: the answer is a 401.
        if not request.user.is_authenticated:
            return None
        return super()._get_key(request)

    def authenticate(self, request: HttpRequest, key: str | None) -> Any:
        user = request.user
        return user if key is not None and user.is_authenticated else None


AUTH = [BearerToken(), SessionCookie()]
