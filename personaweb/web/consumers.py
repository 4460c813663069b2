"""The WebSocket side of the debugger page: thin on purpose.

It checks that the session belongs to the user, joins the session's group, sends the panes
once on connect (for the page's window), and forwards the frames that live.py rendered, as
they are: a frame is rendered once for every browser, never per consumer. The page talks to
the server by HTTP (htmx posts with CSRF); nothing comes in here. Runs never live here: a
consumer dies with its socket, while runs belong to the server process (runs.py).
"""

from __future__ import annotations

from functools import partial
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from personaweb.web import fragments, recovery
from personaweb.web.live import group_name
from personaweb.web.models import ChatSession
from personaweb.web.panes import TREE_WINDOW

MAX_WINDOW = 100_000


def window_of(query: bytes) -> int:
    """The page's tree window from the socket's query string (?window=N), bounded."""
    raw = parse_qs(query.decode("latin-1")).get("window", [""])[0]
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 6:
        return TREE_WINDOW
    return max(TREE_WINDOW, min(int(raw), MAX_WINDOW))


class SessionConsumer(AsyncWebsocketConsumer):
    group: str | None = None

    async def connect(self):
        user = self.scope.get("user")
        if user is None or not user.is_authenticated:
            await self.close()
            return
        self.session_id = int(self.scope["url_route"]["kwargs"]["session_id"])
        if not await self.owns_session(user):
            # Same answer as a missing session: nobody learns which ids exist.
            await self.close()
            return
        self.group = group_name(self.session_id)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # A (re)connect gets the whole current state: whatever it missed is repaired here.
        await self.send(text_data=await self.resync(window_of(self.scope.get("query_string", b""))))

    async def disconnect(self, code):
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        return

    # -- group events (type "frame" -> frame) ----------------------------------------------

    async def frame(self, event):
        await self.send(text_data=event["html"])

    # -- database ------------------------------------------------------------------------------

    @database_sync_to_async
    def owns_session(self, user) -> bool:
        # A browser reconnecting to a restarted server may be its first visitor: recover the
        # runs the old process left behind before showing them.
        recovery.ensure_recovered()
        return ChatSession.objects.filter(pk=self.session_id, owner=user).exists()

    # Its own thread, not the one the session's run writes through: a resync renders the
    # whole tree pane (a few hundred ms at 10,000 nodes), and ten browsers reconnecting
    # must not hold the run's writes for seconds. It only reads.
    @partial(database_sync_to_async, thread_sensitive=False)
    def resync(self, window: int) -> str:
        session = ChatSession.objects.select_related("character").filter(pk=self.session_id).first()
        return fragments.resync(session, window) if session is not None else ""
