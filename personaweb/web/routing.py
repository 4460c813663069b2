from __future__ import annotations

from django.urls import path, re_path

from personaweb.web.consumers import SessionConsumer
from personaweb.web.ws_fallback import NoSuchSocket

websocket_urlpatterns = [
    path("ws/s/<int:session_id>/", SessionConsumer.as_asgi()),
    re_path(r"", NoSuchSocket.as_asgi()),  # last: any other path is refused, not a 500
]
