"""The WebSocket side of the debugger page: thin on purpose.

It checks that the session belongs to the user, joins the session's group, and turns group
events into HTML fragments (rendered by fragments.py from the same templates as the page) that
the htmx ws extension swaps in out-of-band. Runs never live here: a consumer dies with its
socket, while runs belong to the server process (runs.py).
"""

from __future__ import annotations

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncWebsocketConsumer

from personaweb.web import fragments, runs
from personaweb.web.models import ChatSession


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
        self.group = f"session-{self.session_id}"
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        # A (re)connect gets the whole current state: whatever it missed is repaired here.
        await self.send(text_data=await self.render(fragments.resync))

    async def disconnect(self, code):
        if self.group is not None:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data=None, bytes_data=None):
        # The page talks to the server by HTTP (htmx posts with CSRF); nothing comes in here.
        return

    # -- group events (type "node.changed" -> node_changed) -------------------------------

    async def node_changed(self, event):
        html = await self.render(fragments.node_changed, event["node_id"], event["created"])
        if html:
            await self.send(text_data=html)

    async def node_tokens(self, event):
        await self.send(text_data=fragments.tokens(self.session_id, event["node"]))

    async def run_changed(self, event):
        await self.send(text_data=await self.render(fragments.run_panes))

    async def tree_changed(self, event):
        await self.send(text_data=await self.render(fragments.resync))

    async def flash(self, event):
        await self.send(text_data=fragments.flash(event["message"]))

    # -- database ------------------------------------------------------------------------------

    @database_sync_to_async
    def owns_session(self, user) -> bool:
        # A browser reconnecting to a restarted server may be its first visitor: recover the
        # runs the old process left behind before showing them.
        runs.ensure_recovered()
        return ChatSession.objects.filter(pk=self.session_id, owner=user).exists()

    @database_sync_to_async
    def render(self, fn, *args) -> str:
        session = ChatSession.objects.select_related("character").filter(pk=self.session_id).first()
        if session is None:
            return ""
        return fn(session, *args)
