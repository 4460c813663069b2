"""Comparisons over the API: made by the page's form rules, played at once, read back."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async

from personaweb.compare import running
from personaweb.compare.models import Comparison
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_comparison_made_over_the_api_plays_and_reports(
    async_client, alice, alice_token, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice)
    body = {
        "character": session.character_id,
        "script": ["Good evening."],
        "contenders": [{"strategy": "single"}, {"strategy": "nested", "temperature": 0.2}],
        "samples": 1,
    }
    made = await async_client.post(
        "/api/comparisons", body, content_type="application/json", headers=bearer(alice_token)
    )
    assert made.status_code == 201, made.content
    data = made.json()
    assert [c["label"] for c in data["contenders"]] == [
        "single · default model · t=0.7",
        "nested · default model · t=0.2",
    ]
    comparison = await Comparison.objects.aget(pk=data["id"], owner=alice)
    await running.wait(comparison)
    found = await async_client.get(
        f"/api/comparisons/{comparison.pk}/results", headers=bearer(alice_token)
    )
    results = found.json()
    assert [c["status"] for c in results["contenders"]] == ["done", "done"]
    assert {r["reply"].startswith("[styled]") for r in results["replies"]} == {True, False}
    assert results["figures"]


async def test_the_form_rules_refuse_a_bad_comparison(
    async_client, alice, alice_token, make_session
):
    session = await sync_to_async(make_session)(alice)
    bad = {
        "character": session.character_id,
        "script": ["one line\nsmuggling another"],
        "contenders": [{"strategy": "single"}, {"strategy": "nested"}],
    }
    response = await async_client.post(
        "/api/comparisons", bad, content_type="application/json", headers=bearer(alice_token)
    )
    assert response.status_code == 400 and "line break" in response.json()["detail"]
    mute = await sync_to_async(make_session)(alice)
    await type(mute.character).objects.filter(pk=mute.character_id).aupdate(data={"name": "Mute"})
    response = await async_client.post(
        "/api/comparisons",
        {**bad, "character": mute.character_id, "script": ["hi"]},
        content_type="application/json",
        headers=bearer(alice_token),
    )
    assert response.status_code == 400 and "no sample lines" in response.json()["detail"]
    assert not await Comparison.objects.aexists()
