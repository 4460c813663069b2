"""Hostile input to the API: malformed ids, huge numbers, wrong types, oversized text, NaN,
lone surrogates, a body over the upload limit. Always a 4xx with a JSON `detail`, never a
server error (the test client raises on one), and nothing created."""

from __future__ import annotations

import pytest

from personaweb.personas.engine import MAX_INPUT_CHARS
from personaweb.web.models import Annotation, Character, ChatSession, NodeRow
from tests.api.conftest import bearer
from tests.web.test_views import chain

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def base(alice, make_session) -> tuple[str, str]:
    session = make_session(alice)
    return f"/api/sessions/{session.pk}", chain(session, 2)[1].id


def refused(response, *statuses: int) -> bool:
    return response.status_code in statuses and "detail" in response.json()


def test_malformed_and_huge_ids_are_json_404s(client, alice_token, base):
    s, _ = base
    for path in (
        "/api/sessions/²",
        "/api/sessions/-1",
        f"/api/sessions/{10**30}",
        f"/api/sessions/{2**63}/tree",
        f"{s}/nodes/²",
        f"{s}/nodes/{'a' * 65}",
        f"{s}/runs/{10**30}",
        f"/api/characters/{10**30}",
        "/api/comparisons/0",
        "/api/nothing/here",
    ):
        assert refused(client.get(path, headers=bearer(alice_token)), 404), path


def test_bad_bodies_are_4xx_and_change_nothing(client, alice_token, base):
    s, node = base

    def post(url: str, raw: str):
        return client.post(url, raw, content_type="application/json", headers=bearer(alice_token))

    too_long = "x" * (MAX_INPUT_CHARS + 1)
    cases = [
        (f"{s}/messages", "{not json", 400),
        (f"{s}/messages", '{"text": NaN}', 400),
        (f"{s}/messages", '{"text": "\\ud800"}', 400),  # a lone surrogate: no text holds it
        (f"{s}/messages", '{"text": "a\\u0000b"}', 400),  # NUL: PostgreSQL would refuse it
        (f"{s}/messages", '{"text": 5}', 422),
        (f"{s}/messages", '{"text": ["a"]}', 422),
        (f"{s}/messages", f'{{"text": "{too_long}"}}', 400),
        (f"{s}/messages", '{"text": "   "}', 400),
        (f"{s}/nodes/{node}/annotations", '{"score": 1e999}', 400),
        (f"{s}/nodes/{node}/annotations", '{"score": "lots"}', 422),
        (f"{s}/nodes/{node}/feedback", '{"text": ""}', 400),
        (f"{s}/nodes/{node}/dance", "{}", 422),
        ("/api/sessions", '{"character": 1e300}', 422),
        ("/api/sessions", f'{{"character": {10**30}}}', 400),
        ("/api/sessions", '{"hierarchy": "poetry"}', 422),
        ("/api/sessions", '{"profiles": {"orchestrator": {"temperature": 9}}}', 422),
        ("/api/characters", '{"name": ""}', 400),
        ("/api/characters", '{"name": "X", "goals": 7}', 422),
        ("/api/characters", '{"name": "X", "goals": ["", "b"]}', 400),  # the sheet's rule
        ("/api/characters", '{"name": "X", "talkativeness": "loud"}', 422),
        ("/api/characters", '{"name": "X", "unknown_field": 1}', 422),
        ("/api/comparisons", '{"character": 1, "script": [], "contenders": []}', 422),
    ]
    problems = []
    for url, raw, status in cases:
        response = post(url, raw)
        if not refused(response, status):
            problems.append((url, raw[:40], response.status_code, response.content[:120]))
    assert not problems
    assert ChatSession.objects.count() == 1 and NodeRow.objects.count() == 2
    assert not Annotation.objects.exists()
    assert not Character.objects.filter(name="X").exists()


def test_a_body_over_the_upload_limit_is_a_413(client, alice_token, base, settings):
    s, _ = base
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    raw = '{"text": "' + "x" * 2000 + '"}'
    response = client.post(
        f"{s}/messages", raw, content_type="application/json", headers=bearer(alice_token)
    )
    assert refused(response, 413)


def test_odd_query_values_are_4xx(client, alice_token, base):
    s, _ = base
    for url, query in (
        (f"{s}/tree", {"limit": "²"}),
        (f"{s}/tree", {"after": str(10**30)}),
        (f"{s}/events", {"timeout": "NaN"}),
        (f"{s}/events", {"timeout": "99999"}),
        (f"{s}/events", {"run": str(2**63 - 1)}),
        ("/api/training/preferences", {"session": "²"}),
        ("/api/training/preferences", {"since": "yesterday"}),
        ("/api/training/poems", {}),
    ):
        response = client.get(url, query, headers=bearer(alice_token))
        assert 400 <= response.status_code < 500 and "detail" in response.json(), (url, query)
