"""Ownership through the API, as on the pages: bob's token sees none of alice's things, and
every id of hers is a 404 for him, exactly like an id that does not exist."""

from __future__ import annotations

import pytest
from django.test import Client

from personaweb.compare.setup import ContenderSpec, create_comparison
from personaweb.web.models import Annotation, Character, ChatSession, NodeRow, Run
from tests.api.conftest import bearer
from tests.web.test_views import chain

pytestmark = pytest.mark.django_db(transaction=True)

MISSING = 2**63 - 1


@pytest.fixture
def alices(alice, make_session):
    session = make_session(alice)
    nodes = chain(session, 3)
    run = Run.objects.create(session=session, trigger="send", status="done")
    comparison = create_comparison(
        alice, session.character, ["Hi"], [ContenderSpec("single"), ContenderSpec("nested")]
    )
    return {"session": session, "node": nodes[1].id, "run": run.pk, "comparison": comparison}


def urls(things) -> list[tuple[str, str, dict | None]]:
    s = f"/api/sessions/{things['session'].pk}"
    character = things["session"].character_id
    comparison = things["comparison"].pk
    node = things["node"]
    return [
        ("get", s, None),
        ("delete", s, None),
        ("put", f"{s}/mode", {"mode": "autonomous"}),
        ("get", f"{s}/export", None),
        ("post", f"{s}/messages", {"text": "hi"}),
        ("post", f"{s}/stop", None),
        ("get", f"{s}/runs", None),
        ("get", f"{s}/runs/{things['run']}", None),
        ("get", f"{s}/events", None),
        ("get", f"{s}/tree", None),
        ("get", f"{s}/path", None),
        ("get", f"{s}/nodes/{node}", None),
        ("post", f"{s}/nodes/{node}/branch", {}),
        ("post", f"{s}/nodes/{node}/annotations", {"text": "mine now"}),
        ("get", f"/api/characters/{character}", None),
        ("put", f"/api/characters/{character}", {"name": "Stolen"}),
        ("delete", f"/api/characters/{character}", None),
        ("get", f"/api/characters/{character}/card/v2.json", None),
        ("get", f"/api/comparisons/{comparison}", None),
        ("get", f"/api/comparisons/{comparison}/results", None),
        ("post", f"/api/comparisons/{comparison}/votes", {"line": 0, "contender": 1}),
        ("post", f"/api/comparisons/{comparison}/reveal", None),
        ("get", f"/api/training/preferences?session={things['session'].pk}", None),
    ]


def call(client: Client, token: str, method: str, url: str, body: dict | None):
    kwargs = {"content_type": "application/json"} if body is not None else {}
    args = (body,) if body is not None else ()
    return getattr(client, method)(url, *args, headers=bearer(token), **kwargs)


def test_bobs_token_lists_none_of_alices_things(client, alices, bob_token):
    for url in ("/api/sessions", "/api/comparisons"):
        assert client.get(url, headers=bearer(bob_token)).json() == []
    names = {c["name"] for c in client.get("/api/characters", headers=bearer(bob_token)).json()}
    assert names and "Sara Wilcox" in names  # bob's own bundled copy, never alice's row
    assert not Character.objects.filter(owner__username="bob", pk=alices["session"].character_id)


def test_every_id_of_alices_is_a_404_for_bob_like_a_missing_one(client, alices, bob_token):
    problems = []
    for method, url, body in urls(alices):
        response = call(client, bob_token, method, url, body)
        if response.status_code != 404:
            problems.append((method, url, response.status_code, response.content[:200]))
    assert not problems
    # And nothing of hers changed.
    session = ChatSession.objects.get(pk=alices["session"].pk)
    assert session.mode == "review" and session.character.name == "Sara Wilcox"
    assert NodeRow.objects.filter(session=session).count() == 3
    assert not Annotation.objects.exists()


def test_a_missing_id_answers_as_bobs_view_of_alices(client, alices, alice_token):
    # The same operations with ids nobody has: the same 404s, so ids reveal nothing.
    missing = {**alices, "run": MISSING, "node": "f" * 32}
    missing["session"] = ChatSession(pk=MISSING, character_id=MISSING)
    missing["comparison"] = type("C", (), {"pk": MISSING})()
    for method, url, body in urls(missing):
        assert call(client, alice_token, method, url, body).status_code == 404, (method, url)


def test_alice_reaches_her_own_things(client, alices, alice_token):
    s = f"/api/sessions/{alices['session'].pk}"
    for url in (s, f"{s}/tree", f"{s}/path", f"{s}/nodes/{alices['node']}", f"{s}/export"):
        assert client.get(url, headers=bearer(alice_token)).status_code == 200, url
