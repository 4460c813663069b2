"""The answer to a WebSocket for a path no route serves: a refusal, like a missing session.

Channels' URLRouter raises "No route found" for such a path, which the server logs as an
error with a traceback and answers with HTTP 500. Routed last, this consumer closes the
handshake instead (the server answers 403), with nothing logged: a mistyped or probed URL is a
client's mistake, not the server's.
"""

from __future__ import annotations

from channels.generic.websocket import AsyncWebsocketConsumer


class NoSuchSocket(AsyncWebsocketConsumer):
    async def connect(self) -> None:
        await self.close()
