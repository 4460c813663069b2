"""A script drives a review-mode turn end to end over the API, as a person does on the page:
make a character and a session, send a message, read each proposal with the messages behind
it, approve until the character replies, read the transcript; and follows a run on the event
stream. The LLM is the scripted server playing the nested dialogue hierarchy."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from channels.layers import get_channel_layer

from personaweb.web import runs
from personaweb.web.live import group_name
from personaweb.web.models import NodeRow
from tests.api.conftest import bearer
from tests.polling import eventually

pytestmark = pytest.mark.django_db(transaction=True)

SARA = {
    "name": "Sara Wilcox",
    "description": "A proud lady.",
    "personality": "commanding",
    "mood": "impatient",
    "goals": ["rise"],
    "sample_lines": ["Leave all the rest to me."],
}


class Script:
    """What a client script does: JSON in, JSON out, a token on every call."""

    def __init__(self, client: Any, token: str) -> None:
        self.client = client
        self.headers = bearer(token)

    async def get(self, url: str, **query: Any) -> Any:
        response = await self.client.get(url, query, headers=self.headers)
        assert response.status_code == 200, response.content
        return response.json()

    async def post(self, url: str, body: dict[str, Any] | None = None, status: int = 202) -> Any:
        response = await self.client.post(
            url, body or {}, content_type="application/json", headers=self.headers
        )
        assert response.status_code == status, response.content
        return response.json()

    async def events(self, url: str, **query: Any) -> list[tuple[str, dict[str, Any]]]:
        """Read an event stream to its end: (event, data) pairs, keep-alives left out."""
        response = await self.client.get(url, query, headers=self.headers)
        assert response.status_code == 200
        assert response["Content-Type"].startswith("text/event-stream")
        text = "".join([chunk.decode() async for chunk in response.streaming_content])
        found = []
        for block in text.strip().split("\n\n"):
            fields = dict(
                line.split(": ", 1) for line in block.splitlines() if not line.startswith(":")
            )
            if fields:
                found.append((fields["event"], json.loads(fields["data"])))
        return found


async def test_a_script_runs_a_review_turn_to_the_reply(
    async_client, alice, alice_token, llm_server
):
    api = Script(async_client, alice_token)
    character = await api.post("/api/characters", SARA, status=201)
    session = await api.post(
        "/api/sessions",
        {"hierarchy": "dialogue", "character": character["id"], "mode": "review"},
        status=201,
    )
    base = f"/api/sessions/{session['id']}"
    run = await api.post(f"{base}/messages", {"text": "I am Joe. Who are you?"})
    assert run["status"] == "running" and run["trigger"] == "send"

    approved = []
    for _ in range(10):  # nested: orchestrator, responder, orchestrator, rewriter, reply
        await runs.wait(session["id"])
        path = await api.get(f"{base}/path")
        if path["next"]["kind"] == "done":
            break
        assert path["next"]["kind"] == "review"
        node = await api.get(f"{base}/nodes/{path['next']['node_id']}")
        # What the person sees in the inspector: the exact messages sent, and the model.
        assert node["status"] == "proposed" and "approve" in node["allowed_actions"]
        sent = node["call"]["messages"]
        assert sent[0]["role"] == "system" and any("I am Joe" in m["content"] for m in sent)
        assert node["call"]["model"] == "scripted-model"
        run = await api.post(f"{base}/nodes/{node['id']}/approve")
        assert run["trigger"] == "approve"
        approved.append(node["persona"])
    else:
        pytest.fail("the turn never ended")

    assert approved == [
        "orchestrator",
        "orchestrator/responder",
        "orchestrator",
        "orchestrator/style_rewriter",
        "orchestrator",
    ]
    transcript = path["transcript"]
    assert [line["speaker"] for line in transcript] == ["user", "orchestrator"]
    assert transcript[0]["text"] == "I am Joe. Who are you?"
    assert transcript[1]["text"].startswith("[styled] Line 1: you said 'I am Joe. Who are you?'")
    # The tree holds every step, and the runs what happened to them.
    tree = await api.get(f"{base}/tree")
    assert tree["total"] == await NodeRow.objects.filter(session_id=session["id"]).acount()
    assert tree["active_leaf"] == path["leaf"]
    finished = await api.get(f"{base}/runs/{run['id']}")
    assert finished["status"] == "done" and finished["leaf_node"] == path["leaf"]


async def test_the_event_stream_follows_a_run_to_its_end(
    async_client, alice, alice_token, llm_server
):
    api = Script(async_client, alice_token)
    character = await api.post("/api/characters", SARA, status=201)
    session = await api.post(
        "/api/sessions", {"character": character["id"], "mode": "review"}, status=201
    )
    base = f"/api/sessions/{session['id']}"
    # Open the stream first, then act: every change of the run arrives on it.
    reading = asyncio.create_task(api.events(f"{base}/events", next_run="true", timeout=30))
    group = group_name(session["id"])
    await eventually(lambda: get_channel_layer().groups.get(group), "the stream to subscribe")
    run = await api.post(f"{base}/messages", {"text": "Hello there"})
    events = await asyncio.wait_for(reading, 30)

    names = [name for name, _ in events]
    assert names[0] == "hello" and names[-1] == "end"
    assert events[0][1] == {"session": session["id"], "run": None}
    assert events[-1][1] == {"reason": "run_finished"}
    started = [data for name, data in events if name == "run_started"]
    finished = [data for name, data in events if name == "run_finished"]
    assert [d["run"] for d in started] == [d["run"] for d in finished] == [run["id"]]
    # Review mode: the run stops at the orchestrator's first proposal, waiting for a person.
    assert finished[0]["status"] == "stopped"
    changes = [data for name, data in events if name in ("node_created", "node_updated")]
    assert changes[0]["event"] == "node_created" and changes[0]["node"]["kind"] == "inbound"
    assert changes[0]["node"]["content"] == "Hello there"
    proposal = changes[-1]
    assert proposal["node"]["persona"] == "orchestrator"
    assert proposal["node"]["kind"] == "proposal" and proposal["node"]["status"] == "proposed"
    assert proposal["next"] == {
        "kind": "review",
        "persona": "orchestrator",
        "node_id": proposal["node"]["id"],
    }
    assert finished[0]["leaf"] == proposal["node"]["id"]
    assert "<" not in json.dumps(events)  # data, never the HTML frames
    # The stream has left the group: nothing stays subscribed after it ends.
    assert not get_channel_layer().groups.get(group)
    # A stream for a run that has ended already says so at once, and ends.
    again = await api.events(f"{base}/events", run=run["id"])
    assert [name for name, _ in again] == ["hello", "run_finished", "end"]


async def test_an_event_stream_without_a_run_ends_at_its_timeout(
    async_client, alice, alice_token, make_session
):
    from asgiref.sync import sync_to_async

    session = await sync_to_async(make_session)(alice)
    api = Script(async_client, alice_token)
    events = await api.events(f"/api/sessions/{session.pk}/events", timeout=0)
    assert events == [
        ("hello", {"session": session.pk, "run": None}),
        ("end", {"reason": "timeout"}),
    ]


async def test_a_quiet_stream_sends_keep_alive_comments(
    async_client, alice, alice_token, make_session, monkeypatch
):
    from asgiref.sync import sync_to_async

    from personaweb.api import events

    monkeypatch.setattr(events, "KEEPALIVE_S", 0.05)
    session = await sync_to_async(make_session)(alice)
    response = await async_client.get(
        f"/api/sessions/{session.pk}/events", {"timeout": 1}, headers=bearer(alice_token)
    )
    text = "".join([chunk.decode() async for chunk in response.streaming_content])
    assert text.startswith("event: hello\n") and text.endswith('data: {"reason": "timeout"}\n\n')
    assert text.count(": keep-alive\n\n") >= 3
