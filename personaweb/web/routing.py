from __future__ import annotations

from django.urls import path

from personaweb.web.consumers import SessionConsumer

websocket_urlpatterns = [
    path("ws/s/<int:session_id>/", SessionConsumer.as_asgi()),
]
