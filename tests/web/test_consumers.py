"""The session WebSocket: who may connect, the resync on connect, and live node updates."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from personaweb.asgi import application
from personaweb.web import runs

pytestmark = pytest.mark.django_db(transaction=True)


def cookie_for(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"sessionid={client.cookies['sessionid'].value}".encode()


async def connect(session, user=None, origin: bytes = b"http://localhost"):
    headers = [(b"origin", origin), (b"host", b"localhost")]
    if user is not None:
        headers.append((b"cookie", await sync_to_async(cookie_for)(user)))
    communicator = WebsocketCommunicator(application, f"/ws/s/{session.pk}/", headers=headers)
    connected, _ = await communicator.connect()
    return communicator, connected


async def test_the_owner_connects_and_gets_a_resync(alice, make_session):
    session = await sync_to_async(make_session)(alice)
    communicator, connected = await connect(session, alice)
    try:
        assert connected
        resync = await communicator.receive_from()
        for pane in ('id="runbar"', 'id="personas"', 'id="transcript"', 'id="tree"'):
            assert pane in resync
    finally:
        await communicator.disconnect()


async def test_it_refuses_a_foreign_session(alice, bob, make_session):
    session = await sync_to_async(make_session)(alice)
    communicator, connected = await connect(session, bob)
    try:
        assert not connected
    finally:
        await communicator.disconnect()


async def test_it_refuses_an_anonymous_visitor(alice, make_session):
    session = await sync_to_async(make_session)(alice)
    communicator, connected = await connect(session, None)
    try:
        assert not connected
    finally:
        await communicator.disconnect()


async def test_it_refuses_a_foreign_origin(alice, make_session):
    session = await sync_to_async(make_session)(alice)
    communicator, connected = await connect(session, alice, origin=b"http://evil.example")
    try:
        assert not connected
    finally:
        await communicator.disconnect()


async def receive_until(communicator, needle: str, timeout: float = 10) -> list[str]:
    """Frames up to and including the first one containing needle."""
    frames: list[str] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        frame = await communicator.receive_from(timeout=max(0.1, deadline - loop.time()))
        frames.append(frame)
        if needle in frame:
            return frames


async def test_nodes_of_a_run_reach_the_browser_as_they_change(
    async_client, alice, make_session, llm_server
):
    llm_server.chunk_delay_s = 0.02
    session = await sync_to_async(make_session)(alice, mode="autonomous")
    communicator, connected = await connect(session, alice)
    try:
        assert connected
        await communicator.receive_from()  # the resync
        await sync_to_async(async_client.force_login)(alice)
        response = await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Hi"})
        assert response.status_code == 204
        frames = await receive_until(communicator, "[styled] Line 1")
        html = "".join(frames)
        # New rows are inserted after their parent, and changed rows swapped in place.
        assert 'hx-swap-oob="afterend:#n-' in html
        assert "k-proposal" in html and "responder" in html
        # Streamed text arrived in batches before the node was finished.
        assert any('id="stream-' in f and "k-proposal" not in f for f in frames)
        await runs.wait(session.pk)
    finally:
        await communicator.disconnect()


async def test_a_reconnect_gets_the_current_state(async_client, alice, make_session, llm_server):
    session = await sync_to_async(make_session)(alice, mode="review")
    await sync_to_async(async_client.force_login)(alice)
    await async_client.post(f"{session.get_absolute_url()}send/", {"text": "While you were out"})
    await runs.wait(session.pk)
    # A browser that was away (or reconnects) gets everything in its first frame.
    communicator, connected = await connect(session, alice)
    try:
        assert connected
        resync = await communicator.receive_from()
        assert "While you were out" in resync
        assert "waiting for review of orchestrator" in resync
    finally:
        await communicator.disconnect()


async def test_changes_that_queue_up_go_out_as_one_frame_with_the_panes_once(alice, make_session):
    from personaweb.personas import Action, NodeKind, NodeStatus
    from personaweb.personas.state import derive
    from personaweb.personas.tree import Node
    from personaweb.web import building
    from personaweb.web.live import Broadcaster, Frames

    session = await sync_to_async(make_session)(alice, mode="review")
    communicator, connected = await connect(session, alice)
    try:
        assert connected
        await communicator.receive_from()  # the resync
        root = await sync_to_async(building.hierarchy_for)(session)
        frames = await sync_to_async(Frames)(session, root.describe(), building.kind_of(session))
        broadcaster = Broadcaster(session.pk, frames)
        said = Node(
            id="a" * 32,
            parent_id=None,
            persona=root.path,
            kind=NodeKind.INBOUND,
            sender="user",
            content="Hello",
            seq=1,
        )
        asked = Node(
            id="b" * 32,
            parent_id=said.id,
            persona=root.path,
            kind=NodeKind.PROPOSAL,
            status=NodeStatus.STREAMING,
            action=Action.REPLY,
            content="",
            seq=2,
        )
        state = derive([said, asked], root.path, root.speakers())
        # Three changes and streamed text queue up before the worker runs: one burst.
        await broadcaster.node_changed(said, state, True)
        await broadcaster.tokens(asked, "Hel")
        asked.status, asked.content = NodeStatus.PROPOSED, "Hello to you."
        await broadcaster.node_changed(
            asked, derive([said, asked], root.path, root.speakers()), True
        )
        await broadcaster.close()
        html = await communicator.receive_from()
        assert await communicator.receive_nothing(timeout=0.2)  # one frame, not three
        assert html.count('id="runbar"') == 1 and html.count('id="personas"') == 1
        assert "Hello to you." in html
        assert 'id="stream-' not in html  # the later change replaced the streamed text
    finally:
        await communicator.disconnect()
