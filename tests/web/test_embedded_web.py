"""The flagship hierarchy on the default model, through the web app: it must visibly nest."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.utils.html import escape

from personaweb.characters.sheet import load_bundled
from personaweb.web import runs
from personaweb.web.models import Character, ChatSession, NodeRow
from tests.web.test_consumers import connect

pytestmark = [pytest.mark.embedded, pytest.mark.django_db(transaction=True)]


def sara_session(owner) -> ChatSession:
    sheet = next(s for s in load_bundled() if s.name == "Sara Wilcox")
    character = Character.objects.create(
        owner=owner, name=sheet.name, slug=sheet.slug, data=sheet.to_dict()
    )
    return ChatSession.objects.create(
        owner=owner,
        title="embedded",
        character=character,
        hierarchy="dialogue",
        strategy="nested",
        mode="autonomous",
    )


async def test_a_nested_turn_on_the_embedded_model_goes_through_both_children(
    async_client, alice, embedded_env
):
    session = await sync_to_async(sara_session)(alice)
    assert session.guided  # the default: small models are guided through the plan
    await sync_to_async(async_client.force_login)(alice)
    watcher, connected = await connect(session, alice)
    assert connected
    try:
        await watcher.receive_from()  # the resync on connect
        response = await async_client.post(
            f"{session.get_absolute_url()}send/", {"text": "I am Joe. Who are you?"}
        )
        assert response.status_code == 204
        await runs.wait(session.pk, timeout=300)

        rows = [n async for n in NodeRow.objects.filter(session=session).order_by("seq")]
        assert not [r for r in rows if r.status == "failed"], [r.content for r in rows]
        proposals = [(r.persona, r.action, r.target) for r in rows if r.kind == "proposal"]
        assert proposals == [
            ("orchestrator", "delegate", "responder"),
            ("orchestrator/responder", "reply", ""),
            ("orchestrator", "delegate", "style_rewriter"),
            ("orchestrator/style_rewriter", "reply", ""),
            ("orchestrator", "reply", ""),
        ]
        rewritten = next(
            r for r in rows if r.persona == "orchestrator/style_rewriter" and r.kind == "proposal"
        )
        final = rows[-1]
        assert final.content == rewritten.content  # the transcript line is the rewritten one
        assert final.data["offered"] == ["reply"] and final.data["plan"] == "guided"

        # Browsers watching the session saw the children's steps as they happened.
        frames = []
        while not await watcher.receive_nothing(timeout=0.5):
            frames.append(await watcher.receive_from())
        assert any("style_rewriter" in frame for frame in frames)
    finally:
        await watcher.disconnect()

    page = (await async_client.get(session.get_absolute_url())).content.decode()
    transcript = page[page.index('id="transcript"') : page.index('id="send-form"')]
    assert escape(rewritten.content.strip()).split("\n")[0][:40] in transcript
