"""The fault suite through the web: a few faults (tests/faults.py) in an autonomous session, a
review session and a group chat, with runs as tasks, the ORM store, the page a person sees and
the retry and continue buttons they press, against the scripted server over real HTTP.

The core suite (tests/personas/test_fault_suite.py) goes through every fault; this one checks
what only the web adds: the run's row says how it ended, the failed node offers its button,
the button's action recovers, and no stored row written before the fault changes.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.forms.models import model_to_dict

from personaweb.llm.scripted_server import ScriptedOpenAIServer
from personaweb.web import runs
from personaweb.web.models import ChatSession, NodeRow, Run
from tests.faults import Fault, FaultyLLM, fault
from tests.scripted_replies import dialogue_responder, group_responder

pytestmark = pytest.mark.django_db(transaction=True)

MAX_REVIEWS = 50
"""More approvals than any turn of the fault suite takes: a run still waiting after them loops."""

CASES = [
    ("autonomous", fault("line-reset-mid-stream")),
    ("autonomous", fault("decision-invalid-json")),
    # Three real tries, as the app makes them (about 1.5 s of backoff).
    ("review", fault("line-500")),
    ("review", fault("line-finish-length")),
    ("group", fault("line-finish-length")),
    ("group", fault("decision-reset-mid-body")),
]


@pytest.fixture
def faulty_llm(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Iterator[Any]:
    """The scripted LLM playing the session's hierarchy, the app pointed at it."""
    play = group_responder if request.node.callspec.params["setting"] == "group" else None
    llm = FaultyLLM(play or dialogue_responder)
    with ScriptedOpenAIServer(responder=llm) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
        monkeypatch.setenv("PERSONAWEB_MODEL", "scripted-model")
        yield llm
        # A mistake in the script must fail the test, never pass for product behaviour.
        assert server.script_errors == [] and server.unexpected == 0


def make_chat(setting: str, alice: Any, make_session: Any, make_cast: Any) -> ChatSession:
    if setting != "group":
        return make_session(alice, mode=setting, strategy="nested")
    cast = make_cast(alice, names=("Ann Archer", "Bob Baker"))
    return ChatSession.objects.create(
        owner=alice,
        title="the inn",
        hierarchy="group",
        strategy="nested",
        mode="autonomous",
        members=[c.pk for c in cast],
        group_settings={"policy": "heuristic", "order": "manual"},
    )


async def rows(session: ChatSession) -> list[NodeRow]:
    return [n async for n in NodeRow.objects.filter(session=session).order_by("seq")]


async def stored(session: ChatSession) -> dict[str, dict[str, Any]]:
    """Every row as stored (its update time aside: only what it says matters)."""
    return {n.id: model_to_dict(n, exclude=["updated_at"]) for n in await rows(session)}


async def settle(client: Any, session: ChatSession) -> NodeRow:
    """Wait for the run; in review mode approve each proposal as a person would, except one
    the token limit cut (they would continue it). Returns the newest node."""
    for _ in range(MAX_REVIEWS):
        await runs.wait(session.pk)
        leaf = (await rows(session))[-1]
        waiting = leaf.kind == "proposal" and leaf.status == "proposed"
        if session.mode != "review" or not waiting or leaf.data.get("truncated"):
            return leaf
        response = await client.post(f"{session.get_absolute_url()}n/{leaf.id}/approve/")
        assert response.status_code == 204
    pytest.fail(f"the run still waited for review after {MAX_REVIEWS} approvals")


async def say(client: Any, session: ChatSession, text: str, speaker: str) -> NodeRow:
    extra = {"speaker": speaker} if session.hierarchy == "group" else {}
    response = await client.post(f"{session.get_absolute_url()}send/", {"text": text, **extra})
    assert response.status_code == 204
    return await settle(client, session)


async def last_run(session: ChatSession) -> Run:
    return await Run.objects.filter(session=session).alatest("pk")


async def page(client: Any, session: ChatSession, node_id: str) -> str:
    response = await client.get(session.get_absolute_url(), {"node": node_id})
    return str(response.content.decode())


@pytest.mark.parametrize(
    ("setting", "fault"), CASES, ids=[f"{s}-{f.target}-{f.name}" for s, f in CASES]
)
async def test_a_fault_shows_on_the_page_and_its_button_recovers(
    async_client: Any,
    alice: Any,
    make_session: Any,
    make_cast: Any,
    faulty_llm: FaultyLLM,
    setting: str,
    fault: Fault,
) -> None:
    session = await sync_to_async(make_chat)(setting, alice, make_session, make_cast)
    await sync_to_async(async_client.force_login)(alice)
    base = session.get_absolute_url()
    first = await say(async_client, session, "Bob, who are you?", "bob")
    assert (await last_run(session)).status == "done"
    before = await stored(session)

    faulty_llm.fault = fault
    leaf = await say(async_client, session, "Ann, and what do you want?", "ann")
    assert faulty_llm.hits >= 1
    if fault.outcome == "failure":
        assert (leaf.kind, leaf.status, leaf.data["retryable"]) == ("error", "failed", True)
        assert fault.says in leaf.content
        assert (await last_run(session)).status == "failed"
        shown = await page(async_client, session, leaf.id)
        assert "failed: retry it" in shown
        assert f'n/{leaf.id}/retry/" hx-swap="none">retry' in shown  # enabled
        action = "retry"
    else:
        cut = next(n for n in await rows(session) if n.data.get("truncated"))
        assert cut.kind == "proposal" and cut.seq > first.seq
        assert f"n/{cut.id}/continue/" in await page(async_client, session, cut.id)
        leaf, action = cut, "continue"
    faulted = (await stored(session))[leaf.id]

    faulty_llm.fault = None
    response = await async_client.post(f"{base}n/{leaf.id}/{action}/")
    assert response.status_code == 204
    end = await settle(async_client, session)
    assert (await last_run(session)).status == "done"
    assert end.seq > leaf.seq and "[styled]" in await page(async_client, session, end.id)

    now = await stored(session)
    assert {i: now[i] for i in before} == before  # the turn before the fault, as it was
    assert now[leaf.id] == faulted  # and the faulted node too
