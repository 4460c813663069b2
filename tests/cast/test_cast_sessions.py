"""A community card in a session, as a new user would try it: the greeting opens the chat
(chosen on the form), the person's name fills `{{user}}`, the next reply follows the greeting,
the card's prompt fields and lorebook reach the prompt, and the inspector shows what fired."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from personaweb.cast import store
from personaweb.cast.models import Lorebook, SessionUser
from personaweb.characters import parse_card
from personaweb.personas import NodeKind
from personaweb.web import runs
from personaweb.web.models import Character, ChatSession, NodeRow
from tests.cardkit import as_png, community_card, lore_entry, v3_card

pytestmark = pytest.mark.django_db(transaction=True)

MACRO = re.compile(r"\{\{\s*(char|user|original)\s*\}\}|<(bot|user|char)>", re.IGNORECASE)


def mira_of(owner: Any, card: dict[str, Any] | None = None) -> Character:
    sheet = parse_card(as_png(card or community_card()), "mira.png")
    character = store.apply_sheet(Character(owner=owner), sheet)
    character.save()
    return character


def session_form(character: Character, **fields: str) -> dict[str, str]:
    return {
        "hierarchy": "dialogue",
        "strategy": "nested",
        "character": str(character.pk),
        "mode": "autonomous",
        **fields,
    }


def new_session(client: Any, character: Character, **fields: str) -> Any:
    return client.post(reverse("session_new"), session_form(character, **fields))


def greeting_rows(session: ChatSession) -> list[NodeRow]:
    return list(NodeRow.objects.filter(session=session, kind=NodeKind.GREETING).order_by("seq"))


# --- opening a session ------------------------------------------------------------------------


def test_a_new_session_opens_with_the_cards_greeting(client, alice):
    character = mira_of(alice)
    client.force_login(alice)
    response = new_session(client, character, user_name="Joe")
    session = ChatSession.objects.get(owner=alice)
    assert response.status_code == 302
    [greeting] = greeting_rows(session)
    assert greeting.persona == "orchestrator" and greeting.parent_id is None
    assert greeting.content == (
        "*Mira Vance rolls up a chart.* You're the new hand, Joe? Don't touch that."
    )
    assert greeting.data == {"greeting": "greeting"}
    assert session.active_node == greeting.id
    assert SessionUser.objects.get(session=session).name == "Joe"
    page = client.get(session.get_absolute_url()).content.decode()
    transcript = page.split('id="transcript"')[1].split('id="send-form"')[0]
    assert "You&#x27;re the new hand, Joe?" in transcript
    assert "done: your turn" in page


def test_the_person_can_pick_an_alternate_greeting_or_none(client, alice):
    character = mira_of(alice)
    client.force_login(alice)
    new_session(client, character, greeting="alt:2", title="storm")
    new_session(client, character, greeting="none", title="silent")
    storm = ChatSession.objects.get(title="storm")
    [greeting] = greeting_rows(storm)
    # No name given: {{user}} is the person's username.
    assert greeting.content == "Storm's coming, alice. Tie yourself to something."
    assert greeting.data == {"greeting": "alternate 2"}
    assert greeting_rows(ChatSession.objects.get(title="silent")) == []


def test_a_greeting_not_on_offer_is_refused_and_creates_nothing(client, alice):
    character = mira_of(alice)
    client.force_login(alice)
    for bad in ("alt:9", "group:1", "anything"):
        response = new_session(client, character, greeting=bad)
        assert response.status_code == 400
        assert "has no greeting" in response.content.decode()
    assert not ChatSession.objects.exists()


def test_the_form_offers_the_chosen_characters_greetings(client, alice):
    character = mira_of(alice)
    client.force_login(alice)
    home = client.get(reverse("home")).content.decode()
    assert 'hx-get="/characters/session-card/"' in home
    assert 'name="user_name"' in home and 'value="alice"' in home
    fragment = client.get(reverse("cast:session_card"), {"character": character.pk})
    html = fragment.content.decode()
    assert '<option value="first" selected>greeting: *Mira Vance rolls up a chart.*' in html
    assert '<option value="alt:1">alternate 1: *Mira Vance doesn&#x27;t look up.*' in html
    assert '<option value="none">none: the character starts silent</option>' in html
    assert "No sample lines." in html  # this card keeps its examples in the description


def test_the_form_shows_nothing_of_someone_elses_character(client, alice, bob):
    theirs = mira_of(bob)
    client.force_login(alice)
    html = client.get(reverse("cast:session_card"), {"character": theirs.pk}).content.decode()
    assert "Mira" not in html and 'name="greeting"' not in html


# --- a turn through the web ---------------------------------------------------------------------


async def test_the_next_reply_follows_the_greeting_with_the_card_prompt(
    async_client, alice, llm_server
):
    character = await sync_to_async(mira_of)(alice)
    await sync_to_async(async_client.force_login)(alice)
    await async_client.post(reverse("session_new"), session_form(character, user_name="Joe"))
    session = await ChatSession.objects.aget(owner=alice)
    response = await async_client.post(
        f"{session.get_absolute_url()}send/", {"text": "Can I see your compass?"}
    )
    assert response.status_code == 204
    await runs.wait(session.pk)

    responder = next(
        body
        for body in llm_server.requests
        if body["messages"][0]["content"].startswith("You are Mira Vance")
    )
    messages = responder["messages"]
    assert [m["role"] for m in messages] == ["system", "assistant", "user", "system"]
    assert messages[1]["content"].startswith("*Mira Vance rolls up a chart.*")
    assert messages[2]["content"] == "Can I see your compass?"
    assert messages[3]["content"] == "Stay as Mira Vance; never speak for Joe."
    system = messages[0]["content"]
    assert "The situation: Joe has just come aboard the Gull" in system
    assert "sea shanty" in system
    assert "she lets no one, Joe least, touch it" in system  # the compass entry fired
    for body in llm_server.requests:
        for message in body["messages"]:
            assert not MACRO.search(message["content"]), message["content"]

    # The inspector shows the messages as sent and which lore entries fired, and why.
    rows = [r async for r in NodeRow.objects.filter(session=session).order_by("seq")]
    proposal = next(r for r in rows if r.persona == "orchestrator/responder" and r.action)
    assert proposal.call["messages"] == messages
    fired = {f["entry"]: f["why"] for f in proposal.data["lore"]["fired"]}
    assert fired == {"The world": "constant", "The compass": "key “compass”"}
    html = (
        await async_client.get(f"{session.get_absolute_url()}inspect/{proposal.id}/")
    ).content.decode()
    assert "The compass" in html and "key “compass”" in html


async def test_a_session_lorebook_reaches_the_prompt(async_client, alice, llm_server):
    character = await sync_to_async(mira_of)(alice)
    book = await Lorebook.objects.acreate(
        owner=alice,
        name="Ports",
        data={"entries": [lore_entry(["Tortuga"], "Tortuga pays in silver, never in gold.")]},
    )
    await sync_to_async(async_client.force_login)(alice)
    form = session_form(character, strategy="single", lorebooks=str(book.pk))
    await async_client.post(reverse("session_new"), form)
    session = await ChatSession.objects.aget(owner=alice)
    await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Off to Tortuga?"})
    await runs.wait(session.pk)
    [body] = llm_server.requests
    assert "Tortuga pays in silver" in body["messages"][0]["content"]
    # A session of someone who did not attach it does not see it.
    assert await Lorebook.objects.filter(sessions=session).acount() == 1


def test_someone_elses_lorebook_cannot_be_attached(client, alice, bob):
    character = mira_of(alice)
    theirs = Lorebook.objects.create(owner=bob, name="Bob's", data={"entries": []})
    client.force_login(alice)
    response = new_session(client, character, lorebooks=str(theirs.pk))
    assert response.status_code == 400
    assert not ChatSession.objects.exists()


# --- group chats --------------------------------------------------------------------------------


def group_post(cast: list[Character], **fields: str) -> dict[str, Any]:
    data: dict[str, Any] = {
        "members": [c.pk for c in cast],
        "strategy": "single",
        "mode": "autonomous",
        "policy": "heuristic",
        "order": "manual",
        "half_life_s": "30",
        "threshold": "0.6",
        "turn_cap": "6",
        "prepass_threshold": "0.6",
        "prepass_model": "",
        "prepass_temperature": "0",
    }
    for i, c in enumerate(cast, 1):
        data[f"position:{c.pk}"] = str(i)
    data.update(fields)
    return data


def test_a_group_opens_with_each_members_group_greeting(client, alice, make_cast):
    mira = mira_of(alice, v3_card())
    ann, bob, _cara = make_cast(alice)
    client.force_login(alice)
    form = client.get(reverse("group_new")).content.decode()
    assert f'name="greeting:{mira.pk}"' in form
    assert "group greeting 1: Everyone aboard?" in form
    response = client.post(reverse("group_new"), group_post([mira, ann], user_name="Joe"))
    assert response.status_code == 302
    session = ChatSession.objects.get(owner=alice)
    # Only Mira's card has a group greeting; Ann (no greetings at all) starts silent.
    [greeting] = greeting_rows(session)
    assert greeting.persona == f"director/{mira.slug}"
    assert greeting.content == "Everyone aboard? Mira counts heads: Mira Vance, Ann Archer."
    page = client.get(session.get_absolute_url()).content.decode()
    transcript = page.split('id="transcript"')[1].split('id="send-form"')[0]
    assert "Everyone aboard?" in transcript and ">Mira Vance<" in transcript
    # A member may open with an ordinary greeting instead, or stay silent.
    client.post(
        reverse("group_new"),
        group_post([mira, bob], title="alt", **{f"greeting:{mira.pk}": "alt:1"}),
    )
    [alt] = greeting_rows(ChatSession.objects.get(title="alt"))
    assert alt.content.startswith("*Mira doesn't look up.*")


def test_a_group_greeting_not_on_offer_is_a_form_error(client, alice, make_cast):
    mira = mira_of(alice)
    ann, _bob, _cara = make_cast(alice)
    client.force_login(alice)
    response = client.post(
        reverse("group_new"), group_post([mira, ann], **{f"greeting:{mira.pk}": "group:3"})
    )
    assert response.status_code == 400
    assert "has no greeting" in response.content.decode()
    assert not ChatSession.objects.exists()


async def test_in_a_group_the_next_speaker_follows_the_greeting(
    async_client, alice, make_cast, group_llm
):
    mira = await sync_to_async(mira_of)(alice, v3_card())
    ann, _bob, _cara = await sync_to_async(make_cast)(alice)
    await sync_to_async(async_client.force_login)(alice)
    await async_client.post(reverse("group_new"), group_post([mira, ann], user_name="Joe"))
    session = await ChatSession.objects.aget(owner=alice)
    response = await async_client.post(
        f"{session.get_absolute_url()}send/", {"text": "Ann, ready?", "speaker": ann.slug}
    )
    assert response.status_code == 204
    await runs.wait(session.pk)
    to_ann = next(
        b for b in group_llm.requests if b["messages"][0]["content"].startswith("You are Ann")
    )
    told = to_ann["messages"][-1]["content"]
    assert "Mira Vance said: “Everyone aboard? Mira counts heads" in told


def test_a_session_json_export_keeps_the_greeting_node(client, alice):
    character = mira_of(alice)
    client.force_login(alice)
    new_session(client, character)
    session = ChatSession.objects.get(owner=alice)
    exported = json.loads(client.get(f"{session.get_absolute_url()}export/").content)
    assert [n["kind"] for n in exported["nodes"]] == ["greeting"]


async def test_a_replay_opens_with_the_same_greetings_name_and_lorebooks(
    async_client, alice, make_cast, group_llm
):
    mira = await sync_to_async(mira_of)(alice, v3_card())
    ann, _bob, _cara = await sync_to_async(make_cast)(alice)
    book = await Lorebook.objects.acreate(owner=alice, name="Ports", data={"entries": []})
    await sync_to_async(async_client.force_login)(alice)
    form = group_post([mira, ann], user_name="Joe", order="natural", lorebooks=str(book.pk))
    await async_client.post(reverse("group_new"), form)
    source = await ChatSession.objects.aget(owner=alice)
    await async_client.post(f"{source.get_absolute_url()}send/", {"text": "Ann, ready?"})
    await runs.wait(source.pk)

    await async_client.post(reverse("group_replay", args=[source.pk]), {"policy": "prepass"})
    replay = await ChatSession.objects.exclude(pk=source.pk).aget(owner=alice)
    await runs.wait(replay.pk)
    rows = [r async for r in NodeRow.objects.filter(session=replay).order_by("seq")]
    assert rows[0].kind == NodeKind.GREETING and rows[0].content.startswith("Everyone aboard?")
    first_message = next(r for r in rows if r.kind == NodeKind.INBOUND)
    assert first_message.parent_id == rows[0].id
    assert (await SessionUser.objects.aget(session=replay)).name == "Joe"
    assert await Lorebook.objects.filter(sessions=replay).acount() == 1
