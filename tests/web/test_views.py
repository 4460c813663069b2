"""The debugger's HTTP side, with alice (owner) and bob (a stranger)."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from personaweb.personas import Action, Node, NodeKind, NodeStatus
from personaweb.web import runs
from personaweb.web.models import Annotation, ChatSession, NodeRow
from personaweb.web.store import OrmStore

pytestmark = pytest.mark.django_db(transaction=True)


def chain(session: ChatSession, n: int) -> list[Node]:
    """n nodes: a user message, then alternating proposals (approved) and inbound deliveries."""
    nodes: list[Node] = []
    parent = None
    for i in range(n):
        if i % 2 == 0:
            node = Node(
                id=f"{session.pk:08x}{i:024x}",
                parent_id=parent,
                persona="orchestrator",
                kind=NodeKind.INBOUND,
                content=f"message {i}",
                sender="user",
            )
        else:
            node = Node(
                id=f"{session.pk:08x}{i:024x}",
                parent_id=parent,
                persona="orchestrator",
                kind=NodeKind.PROPOSAL,
                status=NodeStatus.APPROVED,
                action=Action.REPLY,
                content=f"reply {i}",
            )
        nodes.append(node)
        parent = node.id
    OrmStore(session.pk).add_many(nodes)
    session.active_node = parent or ""
    session.save()
    return nodes


def test_pages_need_a_login(client, alice, make_session):
    session = make_session(alice)
    for url in (reverse("home"), session.get_absolute_url()):
        response = client.get(url)
        assert response.status_code == 302
        assert response["Location"].startswith(reverse("login"))


def test_the_login_page_logs_in(client, alice):
    response = client.post(
        reverse("login"), {"username": "alice", "password": "a-long-test-password-42"}
    )
    assert response.status_code == 302
    assert client.get(reverse("home")).status_code == 200


def test_home_lists_only_my_sessions_and_offers_bundled_characters(
    client, alice, bob, make_session
):
    make_session(alice, title="alice's chat")
    make_session(bob, title="bob's chat")
    client.force_login(alice)
    page = client.get(reverse("home")).content.decode()
    assert "alice&#x27;s chat" in page
    assert "bob&#x27;s chat" not in page
    assert "Sara Wilcox" in page  # a bundled sheet, copied for alice on first visit


def test_it_creates_a_session_with_a_profile_per_persona(client, alice):
    client.force_login(alice)
    client.get(reverse("home"))
    character = alice.characters.first()
    response = client.post(
        reverse("session_new"),
        {
            "hierarchy": "dialogue",
            "character": character.pk,
            "mode": "autonomous",
            "model:orchestrator/responder": "big-model",
            "temperature:orchestrator/responder": "1.1",
            "temperature:orchestrator": "0.2",
        },
    )
    session = ChatSession.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == session.get_absolute_url()
    assert session.mode == "autonomous"
    assert session.profiles["orchestrator/responder"]["model"] == "big-model"
    assert session.profiles["orchestrator/responder"]["temperature"] == 1.1
    assert "orchestrator" not in session.profiles  # unchanged from the default: not stored
    page = client.get(session.get_absolute_url()).content.decode()
    assert "big-model · t 1.1" in page


def test_it_refuses_a_temperature_out_of_range(client, alice):
    client.force_login(alice)
    client.get(reverse("home"))
    response = client.post(
        reverse("session_new"),
        {
            "hierarchy": "dialogue",
            "character": alice.characters.first().pk,
            "temperature:orchestrator/responder": "7",
        },
    )
    assert response.status_code == 400
    assert not ChatSession.objects.exists()


def test_it_refuses_a_malformed_character_id_without_a_server_error(client, alice):
    client.force_login(alice)
    response = client.post(reverse("session_new"), {"hierarchy": "dialogue", "character": "abc"})
    assert response.status_code == 400
    assert not ChatSession.objects.exists()


def test_it_rejects_a_foreign_session(client, alice, bob, make_session):
    session = make_session(alice)
    nodes = chain(session, 2)
    client.force_login(bob)
    base = session.get_absolute_url()
    # Every way in answers 404, exactly as for a session that does not exist.
    assert client.get(base).status_code == 404
    assert client.get(f"{base}tree/").status_code == 404
    assert client.get(f"{base}inspect/{nodes[1].id}/").status_code == 404
    assert client.get(f"{base}export/").status_code == 404
    assert client.post(f"{base}select/{nodes[1].id}/").status_code == 404
    assert client.post(f"{base}mode/", {"mode": "autonomous"}).status_code == 404
    assert client.post(f"{base}n/{nodes[1].id}/annotate/", {"text": "x"}).status_code == 404
    assert client.post(f"{base}delete/").status_code == 404
    assert ChatSession.objects.filter(pk=session.pk, mode="review").exists()
    assert not Annotation.objects.exists()


async def test_a_stranger_cannot_act_on_a_foreign_session(async_client, alice, bob, make_session):
    session = await sync_to_async(make_session)(alice)
    nodes = await sync_to_async(chain)(session, 2)
    await sync_to_async(async_client.force_login)(bob)
    base = session.get_absolute_url()
    assert (await async_client.post(f"{base}send/", {"text": "hi"})).status_code == 404
    response = await async_client.post(f"{base}n/{nodes[1].id}/branch/")
    assert response.status_code == 404
    assert await NodeRow.objects.filter(session=session).acount() == 2


def test_the_debugger_page_costs_the_same_queries_at_any_size(client, alice, make_session):
    small, large = make_session(alice, title="small"), make_session(alice, title="large")
    chain(small, 10)
    chain(large, 400)
    client.force_login(alice)
    client.get(small.get_absolute_url())  # once per process: recovery of stopped runs
    counts = []
    for session, node in ((small, f"{small.pk:08x}{3:024x}"), (large, f"{large.pk:08x}{301:024x}")):
        with CaptureQueriesContext(connection) as queries:
            response = client.get(session.get_absolute_url(), {"node": node})
        assert response.status_code == 200
        counts.append(len(queries))
    assert counts[0] == counts[1]


def test_llm_output_and_character_text_are_escaped(client, alice, make_session):
    hostile = '<script>alert(1)</script><img src=x onerror=alert(2)><b hx-get="/evil">x</b>'
    session = make_session(alice)
    session.character.name = hostile
    session.character.data = {**session.character.data, "name": hostile}
    session.character.save()
    nodes = chain(session, 2)
    NodeRow.objects.filter(pk=nodes[1].id).update(content=hostile)
    NodeRow.objects.filter(pk=nodes[0].id).update(content=hostile)
    client.force_login(alice)
    page = client.get(session.get_absolute_url(), {"node": nodes[1].id}).content.decode()
    assert "<script>alert" not in page
    assert "<img src=x" not in page
    assert 'hx-get="/evil"' not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    response = client.get(session.get_absolute_url())
    assert "script-src 'self'" in response["Content-Security-Policy"]


def test_a_forced_approve_of_an_applied_node_is_refused(client, alice, make_session):
    session = make_session(alice)
    nodes = chain(session, 2)  # the reply is approved already
    client.force_login(alice)
    response = client.post(f"{session.get_absolute_url()}n/{nodes[1].id}/approve/")
    assert response.status_code == 409
    assert "cannot approve this proposal node: it is approved" in response.content.decode()
    page = client.get(session.get_absolute_url(), {"node": nodes[1].id}).content.decode()
    assert 'class="approve" data-key="a"' in page
    assert page.split('class="approve"')[1].split(">")[0].endswith("disabled")


def test_annotations_are_stored_and_shown(client, alice, make_session):
    session = make_session(alice)
    nodes = chain(session, 2)
    client.force_login(alice)
    url = f"{session.get_absolute_url()}n/{nodes[1].id}/annotate/"
    response = client.post(url, {"text": "too <b>polite</b>", "label": "tone", "score": "2"})
    assert response.status_code == 200
    note = Annotation.objects.get()
    assert (note.author, note.label, note.score) == (alice, "tone", 2.0)
    assert "too &lt;b&gt;polite&lt;/b&gt;" in response.content.decode()
    assert client.post(url, {"score": "lots"}).status_code == 400
    assert client.post(url, {"score": "nan"}).status_code == 400
    assert client.post(url, {"text": "x" * 20_001}).status_code == 400


def test_selecting_a_node_on_another_branch_switches_to_it(client, alice, make_session):
    session = make_session(alice)
    nodes = chain(session, 4)
    # A second branch from the first message: a different reply.
    other = Node(
        id="b" * 32,
        parent_id=nodes[0].id,
        persona="orchestrator",
        kind=NodeKind.PROPOSAL,
        status=NodeStatus.APPROVED,
        action=Action.REPLY,
        content="the other reply",
    )
    OrmStore(session.pk).add_many([other])
    client.force_login(alice)
    page = client.get(session.get_absolute_url()).content.decode()
    assert "reply 3" in page and "branch" in page and "the other reply" in page
    response = client.post(f"{session.get_absolute_url()}select/{other.id}/")
    assert response.status_code == 200
    session.refresh_from_db()
    assert session.active_node == other.id
    html = response.content.decode()
    assert 'id="transcript" class="transcript" aria-live="polite" hx-swap-oob="true"' in html
    transcript = html.split('id="transcript"')[1].split('id="tree"')[0]
    assert "the other reply" in transcript and "reply 3" not in transcript
    # Selecting a node on the active path only opens the inspector.
    response = client.post(f"{session.get_absolute_url()}select/{nodes[0].id}/")
    assert 'id="tree"' not in response.content.decode()


def test_mode_and_breakpoints_are_saved(client, alice, make_session):
    session = make_session(alice)
    client.force_login(alice)
    response = client.post(
        f"{session.get_absolute_url()}mode/",
        {"mode": "breakpoints", "breakpoints": ["orchestrator/responder", "not/a/persona"]},
    )
    assert response.status_code == 200
    session.refresh_from_db()
    assert session.mode == "breakpoints"
    assert session.breakpoints == ["orchestrator/responder"]


def test_export_gives_the_tree_as_json(client, alice, make_session):
    session = make_session(alice)
    chain(session, 3)
    client.force_login(alice)
    response = client.get(f"{session.get_absolute_url()}export/")
    assert response["Content-Type"] == "application/json"
    assert response.json()["format"] == "personaweb.tree/1"
    assert len(response.json()["nodes"]) == 3


# --- runs through the views --------------------------------------------------------------


async def nodes_of(session) -> list[NodeRow]:
    return [n async for n in NodeRow.objects.filter(session=session).order_by("seq")]


async def test_send_runs_until_the_first_proposal_in_review_mode(
    async_client, alice, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice, mode="review")
    await sync_to_async(async_client.force_login)(alice)
    response = await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Hello"})
    assert response.status_code == 204
    await runs.wait(session.pk)
    rows = await nodes_of(session)
    assert [(r.persona, r.kind, r.status) for r in rows] == [
        ("orchestrator", "inbound", "recorded"),
        ("orchestrator", "proposal", "proposed"),
    ]
    assert rows[1].action == "delegate" and rows[1].target == "responder"
    assert rows[1].call["model"] == "scripted-model"
    await session.arefresh_from_db()
    assert session.active_node == rows[1].id
    # The run waits for a person: a new message is refused until the proposal is settled.
    response = await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Again"})
    assert response.status_code == 409


async def test_autonomous_mode_runs_the_turn_to_the_characters_reply(
    async_client, alice, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice, mode="autonomous")
    await sync_to_async(async_client.force_login)(alice)
    await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Who are you?"})
    await runs.wait(session.pk)
    rows = await nodes_of(session)
    assert rows[-1].persona == "orchestrator" and rows[-1].action == "reply"
    assert rows[-1].content.startswith("[styled] Line 1")
    page = (await async_client.get(session.get_absolute_url())).content.decode()
    transcript = page.split('id="transcript"')[1].split('id="send-form"')[0]
    assert "Who are you?" in transcript and "[styled] Line 1: you said" in transcript
    assert "done: your turn" in page


async def test_review_approve_reject_feedback_and_branch(
    async_client, alice, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice, mode="review")
    await sync_to_async(async_client.force_login)(alice)
    base = session.get_absolute_url()
    await async_client.post(f"{base}send/", {"text": "Hello"})
    await runs.wait(session.pk)
    first = (await nodes_of(session))[-1]

    assert (await async_client.post(f"{base}n/{first.id}/approve/")).status_code == 204
    await runs.wait(session.pk)
    rows = await nodes_of(session)
    responder = rows[-1]
    assert (responder.persona, responder.status) == ("orchestrator/responder", "proposed")
    assert responder.content.startswith("Line 1")

    assert (await async_client.post(f"{base}n/{responder.id}/reject/")).status_code == 204
    await runs.wait(session.pk)
    again = (await nodes_of(session))[-1]
    assert again.parent_id == responder.id and again.content.startswith("Take 2: I will not")

    response = await async_client.post(f"{base}n/{again.id}/feedback/", {"text": "be colder"})
    assert response.status_code == 204
    await runs.wait(session.pk)
    rows = await nodes_of(session)
    feedback, reproposed = rows[-2], rows[-1]
    assert (feedback.kind, feedback.content) == ("feedback", "be colder")
    assert reproposed.persona == "orchestrator/responder"
    assert "as you asked (be colder)" in reproposed.content

    # Branch from the orchestrator's first proposal: a fresh proposal beside it.
    assert (await async_client.post(f"{base}n/{first.id}/branch/")).status_code == 204
    await runs.wait(session.pk)
    siblings = [r async for r in NodeRow.objects.filter(parent_id=first.parent_id)]
    assert len(siblings) == 2
    await session.arefresh_from_db()
    assert session.active_node == siblings[1].id
    # The old branch is untouched.
    assert await NodeRow.objects.filter(pk=reproposed.id, status="proposed").aexists()


async def test_feedback_must_have_text(async_client, alice, make_session, llm_server):
    session = await sync_to_async(make_session)(alice)
    await sync_to_async(async_client.force_login)(alice)
    await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Hello"})
    await runs.wait(session.pk)
    proposal = (await nodes_of(session))[-1]
    response = await async_client.post(
        f"{session.get_absolute_url()}n/{proposal.id}/feedback/", {"text": "  "}
    )
    assert response.status_code == 400


async def test_a_failing_model_leaves_a_failed_node_that_can_be_retried(
    async_client, alice, make_session, llm_server
):
    from personaweb.llm.scripted_server import ServerError

    session = await sync_to_async(make_session)(alice, mode="review")
    await sync_to_async(async_client.force_login)(alice)
    llm_server.enqueue(*[ServerError(400, headers={"x-should-retry": "false"})] * 1)
    await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Hello"})
    await runs.wait(session.pk)
    failed = (await nodes_of(session))[-1]
    assert (failed.kind, failed.status) == ("error", "failed")
    page = (await async_client.get(session.get_absolute_url(), {"node": failed.id})).content
    assert b"failed: retry it" in page
    response = await async_client.post(f"{session.get_absolute_url()}n/{failed.id}/retry/")
    assert response.status_code == 204
    await runs.wait(session.pk)
    retried = (await nodes_of(session))[-1]
    assert retried.parent_id == failed.parent_id and retried.status == "proposed"


def test_posts_without_the_csrf_token_are_refused(alice, make_session):
    from django.test import Client

    session = make_session(alice)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    response = client.post(f"{session.get_absolute_url()}mode/", {"mode": "autonomous"})
    assert response.status_code == 403
    # The page hands htmx the token in a header for every request it makes.
    page = client.get(session.get_absolute_url()).content.decode()
    assert 'hx-headers=\'{"X-CSRFToken": "' in page


def test_deleting_a_session_removes_its_tree(client, alice, make_session):
    session = make_session(alice)
    chain(session, 3)
    client.force_login(alice)
    response = client.post(f"{session.get_absolute_url()}delete/")
    assert response.status_code == 302
    assert not ChatSession.objects.exists() and not NodeRow.objects.exists()


def test_a_long_branch_shows_its_latest_steps_and_loads_earlier_ones(client, alice, make_session):
    session = make_session(alice)
    chain(session, 400)
    client.force_login(alice)
    page = client.get(session.get_absolute_url()).content.decode()
    assert "show earlier steps (250 hidden)" in page
    assert page.count('class="step ') == 150
    more = client.get(f"{session.get_absolute_url()}tree/", {"window": 600}).content.decode()
    assert more.count('class="step ') == 400 and "show earlier steps" not in more


async def test_the_linear_strategy_shows_its_alignment_score_on_the_reply(
    async_client, alice, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice, mode="autonomous", strategy="linear")
    await sync_to_async(async_client.force_login)(alice)
    await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Who are you?"})
    await runs.wait(session.pk)
    rows = await nodes_of(session)
    personas = {r.persona for r in rows}
    assert {"pipeline/responder", "pipeline/style_rewriter", "pipeline/alignment"} <= personas
    assert rows[-1].persona == "pipeline" and rows[-1].data["alignment"] == 0.8
    page = (await async_client.get(session.get_absolute_url())).content.decode()
    assert "align 0.80" in page


async def test_an_edit_can_send_a_delegation_to_another_child(
    async_client, alice, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice, mode="review")
    await sync_to_async(async_client.force_login)(alice)
    base = session.get_absolute_url()
    await async_client.post(f"{base}send/", {"text": "Hello"})
    await runs.wait(session.pk)
    proposal = (await nodes_of(session))[-1]
    assert (proposal.action, proposal.target) == ("delegate", "responder")
    html = (await async_client.get(f"{base}inspect/{proposal.id}/")).content.decode()
    assert 'value="delegate:style_rewriter"' in html and 'value="reply"' in html

    response = await async_client.post(
        f"{base}n/{proposal.id}/edit/",
        {"content": "Rewrite: hello there", "route": "delegate:style_rewriter"},
    )
    assert response.status_code == 204
    await runs.wait(session.pk)
    rows = await nodes_of(session)
    edit = next(r for r in rows if r.kind == "edit")
    assert (edit.action, edit.target, edit.status) == ("delegate", "style_rewriter", "approved")
    inbound = next(r for r in rows if r.parent_id == edit.id)
    assert inbound.persona == "orchestrator/style_rewriter"
    assert inbound.content == "Rewrite: hello there"
    # A route to a child that does not exist is refused, and nothing is written.
    later = (await nodes_of(session))[-1]
    assert (later.persona, later.status) == ("orchestrator/style_rewriter", "proposed")
    count = len(rows)
    bad = await async_client.post(
        f"{base}n/{later.id}/edit/", {"content": "x", "route": "delegate:ghost"}
    )
    assert bad.status_code == 409 and len(await nodes_of(session)) == count
