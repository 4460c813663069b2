"""Sessions as files: export one, import it as a new session (alice owns, bob does not)."""

from __future__ import annotations

import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from personaweb.personas import Action, Node, NodeKind, NodeStatus
from personaweb.web import runs, session_format
from personaweb.web.models import Character, ChatSession, NodeRow
from personaweb.web.store import OrmStore

pytestmark = pytest.mark.django_db(transaction=True)

IMPORT = "/sessions/import/"


def export(client: Client, session: ChatSession) -> dict[str, Any]:
    response = client.get(f"{session.get_absolute_url()}export/")
    assert response.status_code == 200
    return response.json()


def upload(client: Client, doc: dict[str, Any] | str | bytes, name: str = "session.json"):
    body = doc if isinstance(doc, bytes) else str(doc if isinstance(doc, str) else json.dumps(doc))
    raw = body if isinstance(body, bytes) else body.encode()
    return client.post(IMPORT, {"file": SimpleUploadedFile(name, raw, "application/json")})


def imported(response) -> ChatSession:
    assert response.status_code == 302, response.content.decode()[-2000:]
    return ChatSession.objects.get(pk=int(response["Location"].strip("/").rsplit("/", 1)[1]))


def tree_of(session: ChatSession, *, statuses: dict[int, NodeStatus] | None = None) -> list[Node]:
    """A small hand-made tree with what real runs leave: a call record (with trimming and an
    earlier attempt), a delegation, an edit pointing at the node it replaces, a branch, and
    nodes a stopped process left unfinished."""
    statuses = statuses or {}
    call = {
        "messages": [
            {"role": "system", "content": "Stay in character"},
            {"role": "user", "content": "Hi"},
        ],
        "model": "scripted-model",
        "temperature": 0.7,
        "max_tokens": 256,
        "response_text": "Who asks?",
        "prompt_tokens": 40,
        "completion_tokens": 3,
        "latency_s": 0.2,
        "finish_reason": "stop",
        "endpoint": "http://127.0.0.1:9/v1",
        "attempts": [
            {
                "answered": True,
                "response_text": "{",
                "error": "bad JSON",
                "prompt_tokens": 40,
                "completion_tokens": 1,
                "latency_s": 0.1,
                "finish_reason": "stop",
            }
        ],
        "usage_estimated": False,
        "trimmed": {"left_out": 2, "budget": 2048, "prompt_tokens": 40, "counted": "estimate"},
    }
    base = f"{session.pk:08x}"
    ids = [f"{base}{i:024x}" for i in range(7)]
    nodes = [
        Node(ids[0], None, "orchestrator", NodeKind.INBOUND, content="Hello", sender="user"),
        Node(
            ids[1],
            ids[0],
            "orchestrator",
            NodeKind.PROPOSAL,
            NodeStatus.APPROVED,
            "Hello",
            Action.DELEGATE,
            "responder",
            call=None,
            data={"plan": ["responder"]},
        ),
        Node(
            ids[2],
            ids[1],
            "orchestrator/responder",
            NodeKind.INBOUND,
            content="Hello",
            sender="orchestrator",
        ),
        Node(
            ids[3],
            ids[2],
            "orchestrator/responder",
            NodeKind.PROPOSAL,
            NodeStatus.REJECTED,
            "Who asks?",
            Action.REPLY,
        ),
        Node(
            ids[4],
            ids[3],
            "orchestrator/responder",
            NodeKind.EDIT,
            NodeStatus.APPROVED,
            "Who goes there?",
            Action.REPLY,
            data={"edited_from": ids[3]},
        ),
        Node(
            ids[5],
            ids[2],
            "orchestrator/responder",
            NodeKind.PROPOSAL,
            statuses.get(5, NodeStatus.PROPOSED),
            "Who",
            Action.REPLY,
        ),
        Node(
            ids[6],
            ids[2],
            "orchestrator/responder",
            NodeKind.PROPOSAL,
            statuses.get(6, NodeStatus.FAILED),
            "",
            Action.REPLY,
        ),
    ]
    from personaweb.llm.types import CallRecord

    nodes[3].call = CallRecord.from_dict(call)
    OrmStore(session.pk).add_many(nodes)
    session.active_node = ids[4]
    session.save()
    return nodes


# --- round trips --------------------------------------------------------------------------------


def test_it_round_trips_a_session_with_the_same_ids_statuses_and_calls(client, alice, make_session):
    session = make_session(
        alice, title="Sara at dusk", mode="breakpoints", breakpoints=["orchestrator"]
    )
    tree_of(session)
    client.force_login(alice)
    first = export(client, session)
    session.delete()  # the machine it moves to has never seen these ids

    copy = imported(upload(client, first))
    second = export(client, copy)
    assert second["nodes"] == first["nodes"]
    assert copy.owner == alice and copy.title == "Sara at dusk" and copy.mode == "breakpoints"
    assert copy.breakpoints == ["orchestrator"] and copy.active_node == first["meta"]["active_node"]
    assert {k: v for k, v in second["meta"].items()} == first["meta"]


async def test_a_real_run_round_trips(async_client, alice, make_session, llm_server):
    session = await sync_to_async(make_session)(alice, mode="autonomous")
    await sync_to_async(async_client.force_login)(alice)
    await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Who are you?"})
    await runs.wait(session.pk)
    first = (await async_client.get(f"{session.get_absolute_url()}export/")).json()
    assert any(n["call"] for n in first["nodes"])  # real call records travel too
    await session.adelete()
    raw = json.dumps(first).encode()
    response = await async_client.post(IMPORT, {"file": SimpleUploadedFile("s.json", raw)})
    assert response.status_code == 302
    copy = await ChatSession.objects.exclude(pk=session.pk).aget()
    second = (await async_client.get(f"{copy.get_absolute_url()}export/")).json()
    assert second["nodes"] == first["nodes"]
    page = await async_client.get(copy.get_absolute_url())
    assert page.status_code == 200 and "Who are you?" in page.content.decode()


def test_importing_the_same_file_twice_gives_two_sessions_with_their_own_ids(
    client, alice, make_session
):
    session = make_session(alice)
    nodes = tree_of(session)
    client.force_login(alice)
    doc = export(client, session)  # the original is still here: every id is taken
    one, two = imported(upload(client, doc)), imported(upload(client, doc))

    ids = {s.pk: [n.id for n in OrmStore(s.pk).all_nodes()] for s in (session, one, two)}
    assert len(set(ids[session.pk]) | set(ids[one.pk]) | set(ids[two.pk])) == 3 * len(nodes)
    for copy in (one, two):
        got = OrmStore(copy.pk).all_nodes()
        new = dict(zip([n.id for n in nodes], [n.id for n in got], strict=True))
        # The same tree under new names: parents, the active node and references in data.
        assert [new.get(n.parent_id) if n.parent_id else None for n in nodes] == [
            n.parent_id for n in got
        ]
        assert copy.active_node == new[session.active_node]
        assert got[4].data == {"edited_from": new[nodes[3].id]}
        assert [(n.persona, n.kind, n.status, n.content, n.call) for n in got] == [
            (n.persona, n.kind, n.status, n.content, n.call)
            for n in OrmStore(session.pk).all_nodes()
        ]
        assert client.get(copy.get_absolute_url()).status_code == 200


def test_nodes_left_running_arrive_interrupted_and_resumable(client, alice, make_session):
    session = make_session(alice)
    tree_of(session, statuses={5: NodeStatus.STREAMING, 6: NodeStatus.PENDING})
    client.force_login(alice)
    copy = imported(upload(client, export(client, session)))
    statuses = [n.status for n in OrmStore(copy.pk).all_nodes()]
    assert statuses[5:] == [NodeStatus.INTERRUPTED, NodeStatus.INTERRUPTED]
    assert statuses[:5] == [n.status for n in OrmStore(session.pk).all_nodes()][:5]


# --- characters --------------------------------------------------------------------------------


def test_it_reuses_the_importers_character_when_the_sheet_is_the_same(client, alice, make_session):
    session = make_session(alice)
    client.force_login(alice)
    copy = imported(upload(client, export(client, session)))
    assert copy.character == session.character


def test_a_different_sheet_of_the_same_name_becomes_a_new_character(
    client, alice, bob, make_session
):
    session = make_session(alice)
    tree_of(session)
    client.force_login(alice)
    doc = export(client, session)
    client.force_login(bob)
    mine = Character.objects.create(
        owner=bob,
        name="Sara Wilcox",
        slug=session.character.slug,
        data={"name": "Sara Wilcox", "description": "Bob's own Sara."},
    )
    copy = imported(upload(client, doc))
    assert copy.owner == bob and copy.character != mine
    assert copy.character.owner == bob and copy.character.name == "Sara Wilcox (2)"
    assert copy.character.data["description"] == "A proud lady."
    assert NodeRow.objects.filter(session=copy).count() == 7


def test_a_file_without_a_sheet_finds_the_character_by_name(client, alice, make_session):
    session = make_session(alice)
    client.force_login(alice)
    doc = export(client, session)
    del doc["meta"]["character_sheet"]  # as older exports and the console wrote them
    assert imported(upload(client, doc)).character == session.character
    doc["meta"]["character"] = "Nobody Known"
    before = ChatSession.objects.count()
    response = upload(client, doc)
    assert response.status_code == 400 and "Nobody Known" in response.content.decode()
    assert ChatSession.objects.count() == before


def test_a_group_chat_keeps_its_members_by_slug(client, alice, bob, make_cast):
    cast = make_cast(alice)
    session = ChatSession.objects.create(
        owner=alice,
        title="inn",
        hierarchy="group",
        strategy="single",
        mode="autonomous",
        members=[c.pk for c in cast[:2]],
        group_settings={"policy": "heuristic", "order": "natural", "turn_cap": 6, "replay_of": 99},
    )
    inbound = Node("a" * 32, None, "director", NodeKind.INBOUND, content="Hi Ann", sender="user")
    decision = Node(
        "b" * 32,
        "a" * 32,
        "director",
        NodeKind.DECISION,
        data={
            "character": "ann",
            "speak": True,
            "policy": "heuristic",
            "heard": "a" * 32,
            "numbers": {"heat": 0.9},
        },
    )
    OrmStore(session.pk).add_many([inbound, decision])
    client.force_login(alice)
    doc = export(client, session)
    assert [s["slug"] for s in doc["meta"]["member_sheets"]] == ["ann", "bob"]

    client.force_login(bob)
    copy = imported(upload(client, doc))  # bob has none of them: both arrive as his
    members = [Character.objects.get(pk=pk) for pk in copy.members]
    assert [(m.owner, m.slug) for m in members] == [(bob, "ann"), (bob, "bob")]
    assert "replay_of" not in copy.group_settings  # a session of the exporting server
    got = OrmStore(copy.pk).all_nodes()
    assert got[1].data["heard"] == got[0].id != "a" * 32  # alice's ids are taken: renumbered
    assert client.get(copy.get_absolute_url()).status_code == 200


# --- what the file may not do ----------------------------------------------------------------


def test_a_profile_cannot_point_a_persona_at_another_endpoint(client, alice, make_session):
    session = make_session(alice)
    client.force_login(alice)
    doc = export(client, session)
    doc["meta"]["profiles"] = {
        "orchestrator/responder": {
            "model": "m",
            "temperature": 0.3,
            "base_url": "http://evil.example/v1",
        }
    }
    copy = imported(upload(client, doc))
    assert copy.profiles["orchestrator/responder"]["base_url"] is None
    assert copy.profiles["orchestrator/responder"]["model"] == "m"


def broken_files(doc: dict[str, Any]) -> list[tuple[str, Any, str]]:
    """(what, file, words the refusal must contain) for one valid export."""
    nodes = doc["nodes"]

    def with_nodes(changed: list[Any]) -> dict[str, Any]:
        return {**doc, "nodes": changed}

    def with_node(i: int, **fields: Any) -> dict[str, Any]:
        return with_nodes([*nodes[:i], {**nodes[i], **fields}, *nodes[i + 1 :]])

    def with_meta(**fields: Any) -> dict[str, Any]:
        return {**doc, "meta": {**doc["meta"], **fields}}

    first, second = nodes[0]["id"], nodes[1]["id"]
    return [
        ("not JSON", b"{not json", "not JSON"),
        ("not UTF-8", b"\xff\xfe{}", "not UTF-8"),
        ("a list", "[]", "not a PersonaWeb session"),
        ("another format", {**doc, "format": "other/1"}, "not a PersonaWeb tree"),
        ("a cycle", with_node(0, parent_id=second), "cycle"),
        ("an id twice", with_nodes([*nodes, nodes[1]]), "appears twice"),
        ("an unknown parent", with_node(1, parent_id="f" * 32), "unknown parent"),
        ("an unknown status", with_node(1, status="dreaming"), "dreaming"),
        ("an unknown kind", with_node(1, kind="poem"), "poem"),
        ("an unknown action", with_node(1, action="dance"), "dance"),
        ("an unknown hierarchy", with_meta(hierarchy="orchestra"), "orchestra"),
        ("no hierarchy", {**doc, "meta": {"title": "x"}}, "meta.hierarchy is missing"),
        ("an unknown mode", with_meta(mode="asleep"), "asleep"),
        ("a persona too long", with_node(1, persona="p" * 301), "persona"),
        ("a target too long", with_node(1, target="t" * 121), "target"),
        ("an id that is a number", with_node(1, id=5), "id must be text"),
        ("a parent that is a list", with_node(1, parent_id=[first]), "parent_id"),
        ("NaN", json.dumps(doc).replace('"created_at": ', '"created_at": NaN, "x": ', 1), "NaN"),
        (
            "a huge number",
            json.dumps(with_node(1, created_at=0)).replace(
                '"created_at": 0', '"created_at": 1e999', 1
            ),
            "too large",
        ),
        (
            "a huge integer",
            json.dumps(with_node(1, seq=0)).replace('"seq": 0', '"seq": ' + "9" * 30, 1),
            "64 bits",
        ),
        ("a NUL", with_node(1, content="a\x00b"), "NUL"),
        ("a lone surrogate", json.dumps(doc).replace('"Hello"', '"\\ud800"', 1), "surrogate"),
        (
            "deep nesting",
            json.dumps(with_node(1, data={})).replace(
                '"data": {}', '"data": {"x": ' + "[" * 5000 + "]" * 5000 + "}", 1
            ),
            "nests deeper",
        ),
        ("a call without messages", with_node(3, call={"model": "m"}), "messages"),
        (
            "call tokens as text",
            with_node(3, call={**nodes[3]["call"], "prompt_tokens": "many"}),
            "prompt_tokens",
        ),
        ("a bad profile", with_meta(profiles={"orchestrator": {"temperature": 9}}), "temperature"),
        (
            "a bad sheet, no such name",
            with_meta(character_sheet={"name": ""}, character="No One"),
            "name",
        ),
        ("too many nodes", with_nodes(["x"] * (session_format.MAX_NODES + 1)), "at most"),
    ]


def test_every_kind_of_broken_file_is_a_400_that_creates_nothing(client, alice, make_session):
    session = make_session(alice)
    tree_of(session)
    client.force_login(alice)
    doc = export(client, session)
    counts = (ChatSession.objects.count(), NodeRow.objects.count(), Character.objects.count())
    for what, broken, words in broken_files(doc):
        response = upload(client, broken)
        assert response.status_code == 400, what
        page = response.content.decode()
        assert "Import refused" in page and words in page, (what, page[-600:])
        assert (
            ChatSession.objects.count(),
            NodeRow.objects.count(),
            Character.objects.count(),
        ) == counts, what


def test_a_file_over_the_limit_is_refused_before_it_is_read(client, alice, settings):
    settings.SESSION_IMPORT_MAX_MB = 1
    client.force_login(alice)
    response = upload(client, b" " * (2 * 1024 * 1024) + b"{}")
    assert response.status_code == 400 and "larger than 1 MB" in response.content.decode()
    assert not ChatSession.objects.exists()


def test_a_post_without_a_file_is_a_400(client, alice):
    client.force_login(alice)
    response = client.post(IMPORT, {})
    assert response.status_code == 400 and "choose a session file" in response.content.decode()


def test_the_import_needs_a_login_and_a_csrf_token(alice, make_session):
    anonymous = Client()
    response = anonymous.post(IMPORT, {"file": SimpleUploadedFile("s.json", b"{}")})
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    response = strict.post(IMPORT, {"file": SimpleUploadedFile("s.json", b"{}")})
    assert response.status_code == 403
    assert not ChatSession.objects.exists()


def test_the_home_page_offers_the_import(client, alice):
    client.force_login(alice)
    page = client.get(reverse("home")).content.decode()
    assert f'action="{IMPORT}"' in page and 'enctype="multipart/form-data"' in page
    assert client.get(IMPORT).status_code == 200


def test_the_column_limits_are_the_models(db):
    # session_format states them as numbers (to say them in its rules); they must not drift.
    limits = {
        name: NodeRow._meta.get_field(name).max_length
        for name in ("persona", "sender", "target", "action")
    }
    assert limits == {
        "persona": session_format._PERSONA_LIMIT,
        "sender": session_format._PERSONA_LIMIT,
        "target": session_format._TARGET_LIMIT,
        "action": session_format._ACTION_LIMIT,
    }
    assert ChatSession._meta.get_field("title").max_length == session_format._TITLE_LIMIT
