"""A WebSocket to a path no route serves is refused cleanly: no 500, no traceback."""

from __future__ import annotations

import base64
import logging
import os
import socket

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator

from personaweb.asgi import application
from tests.live import LiveServer, sqlite_server_env
from tests.web.test_consumers import cookie_for

pytestmark = pytest.mark.django_db(transaction=True)

UNROUTED = ["/ws/s/abc/", "/ws/s/²/", "/ws/s/1", "/ws/", "/", "/ws/s/1/extra/", "/s/1/"]


@pytest.mark.parametrize("path", UNROUTED)
async def test_it_refuses_a_path_no_route_serves(alice, path, caplog):
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    headers.append((b"cookie", await sync_to_async(cookie_for)(alice)))
    communicator = WebsocketCommunicator(application, path, headers=headers)
    try:
        with caplog.at_level(logging.WARNING):
            connected, _ = await communicator.connect()
        assert not connected
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    finally:
        await communicator.disconnect()


async def test_a_huge_session_id_is_refused_like_a_missing_one(alice):
    headers = [(b"origin", b"http://localhost"), (b"host", b"localhost")]
    headers.append((b"cookie", await sync_to_async(cookie_for)(alice)))
    communicator = WebsocketCommunicator(application, f"/ws/s/{10**30}/", headers=headers)
    try:
        connected, _ = await communicator.connect()
        assert not connected
    finally:
        await communicator.disconnect()


def handshake(port: int, path: str) -> str:
    """The status line daphne answers a WebSocket handshake for `path` with."""
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
        f"Origin: http://127.0.0.1:{port}\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(request.encode())
        return conn.recv(4096).decode("latin-1").split("\r\n", 1)[0]


@pytest.mark.sqlite
def test_the_server_answers_403_and_logs_no_traceback(tmp_path):
    log = tmp_path / "daphne.log"
    server = LiveServer({**sqlite_server_env("http://127.0.0.1:9/v1")}, log)
    server.start()
    try:
        for path in ("/ws/s/abc/", "/ws/nothing/"):
            assert handshake(server.port, path).startswith("HTTP/1.1 403"), path
    finally:
        server.stop()
    text = log.read_text()
    assert "Traceback" not in text and "No route found" not in text, text
