"""A Content-Security-Policy header: defence in depth behind template autoescaping.

Even if some LLM output ever slipped through unescaped, the browser would refuse inline script,
eval (htmx's hx-on and js: expressions) and foreign origins.
"""

from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponse

POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class ContentSecurityPolicyMiddleware:
    """Adds the policy to every response outside the admin. Sync and async capable, so the
    async views (the ones that start runs) stay on the server's event loop."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.is_async = iscoroutinefunction(get_response)
        if self.is_async:
            markcoroutinefunction(self)

    def __call__(self, request: HttpRequest):
        if self.is_async:
            return self._acall(request)
        return self._add_policy(request, self.get_response(request))

    async def _acall(self, request: HttpRequest) -> HttpResponse:
        return self._add_policy(request, await self.get_response(request))

    @staticmethod
    def _add_policy(request: HttpRequest, response: HttpResponse) -> HttpResponse:
        # The admin ships inline scripts of its own; it is for staff, not for LLM output.
        if not request.path.startswith("/admin/"):
            response.headers.setdefault("Content-Security-Policy", POLICY)
        return response
