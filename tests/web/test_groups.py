"""Group chats on the web: the new-group form, a group turn end to end with the scripted LLM,
decision nodes, the heat pane, the policy table, and replay under another policy."""

from __future__ import annotations

import re

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from personaweb.personas import NodeKind
from personaweb.personas.group_metrics import policy_costs
from personaweb.web import group_views, runs
from personaweb.web.models import ChatSession, NodeRow
from personaweb.web.store import OrmStore, path_rows, to_node

pytestmark = pytest.mark.django_db(transaction=True)


def group_form(cast, **fields) -> dict:
    data = {
        "members": [c.pk for c in cast],
        "strategy": "single",
        "mode": "autonomous",
        "policy": "heuristic",
        "order": "natural",
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


def make_group(owner, cast, **settings) -> ChatSession:
    group_settings = {"policy": "heuristic", "order": "natural", **settings}
    return ChatSession.objects.create(
        owner=owner,
        title="the inn",
        hierarchy="group",
        strategy="single",
        mode="autonomous",
        members=[c.pk for c in cast],
        group_settings=group_settings,
    )


async def nodes_of(session) -> list[NodeRow]:
    return [n async for n in NodeRow.objects.filter(session=session).order_by("seq")]


async def send(client, session, text: str, **extra) -> int:
    response = await client.post(f"{session.get_absolute_url()}send/", {"text": text, **extra})
    await runs.wait(session.pk)
    return response.status_code


def section(page: str, pane_id: str) -> str:
    """The HTML of one pane (from its id to the next pane)."""
    start = page.index(f'id="{pane_id}"')
    return page[start : page.index("</section>", start)]


# --- the new-group form ---------------------------------------------------------------------


def test_it_creates_a_group_chat_with_members_in_position_order(client, alice, make_cast):
    ann, bob, cara = make_cast(alice)
    client.force_login(alice)
    assert client.get(reverse("group_new")).status_code == 200
    data = group_form(
        [ann, bob, cara],
        **{
            f"position:{ann.pk}": "3",
            f"position:{cara.pk}": "1",
            f"policy:{bob.pk}": "prepass",
            "order": "list",
            "prepass_model": "cheap-model",
            "half_life_s": "45",
        },
    )
    response = client.post(reverse("group_new"), data)
    session = ChatSession.objects.get(owner=alice)
    assert response.status_code == 302 and response["Location"] == session.get_absolute_url()
    assert session.hierarchy == "group" and session.mode == "autonomous"
    assert session.members == [cara.pk, bob.pk, ann.pk]
    settings = session.group_settings
    assert settings["overrides"] == {"bob": "prepass"} and settings["order"] == "list"
    assert settings["half_life_s"] == 45 and settings["prepass_profile"]["model"] == "cheap-model"
    page = client.get(session.get_absolute_url()).content.decode()
    assert 'id="heat"' in page and 'id="policies"' in page
    # The list order shows in the heat pane: Cara, Bob, Ann.
    heat = section(page, "heat")
    assert heat.index("Cara Cole") < heat.index("Bob Baker") < heat.index("Ann Archer")


def test_each_character_can_have_its_own_model_and_temperature(client, alice, make_cast):
    ann, bob, cara = make_cast(alice)
    client.force_login(alice)
    data = group_form(
        [ann, bob, cara],
        strategy="nested",
        **{f"model:{ann.pk}": "big-model", f"temperature:{ann.pk}": "1.2"},
    )
    assert client.post(reverse("group_new"), data).status_code == 302
    profiles = ChatSession.objects.get(owner=alice).profiles
    assert profiles["director/ann/responder"]["model"] == "big-model"
    assert profiles["director/ann/responder"]["temperature"] == 1.2
    # The orchestrator steers rather than speaks: it keeps its low temperature.
    assert profiles["director/ann"]["model"] == "big-model"
    assert profiles["director/ann"]["temperature"] == 0.2
    assert not any(path.startswith("director/bob") for path in profiles)

    bad = group_form([ann, bob], **{f"temperature:{bob.pk}": "9"})
    response = client.post(reverse("group_new"), bad)
    assert response.status_code == 400
    assert "temperature of Bob Baker must be between 0 and 2" in response.content.decode()


def test_it_needs_at_least_two_characters(client, alice, make_cast):
    ann, *_ = make_cast(alice)
    client.force_login(alice)
    response = client.post(reverse("group_new"), group_form([ann]))
    assert response.status_code == 400
    assert "Pick at least 2 characters." in response.content.decode()
    assert not ChatSession.objects.exists()


def test_it_reports_bad_numbers_next_to_their_fields(client, alice, make_cast):
    cast = make_cast(alice)
    client.force_login(alice)
    response = client.post(
        reverse("group_new"), group_form(cast, threshold="7", turn_cap="zero", policy="vibes")
    )
    page = response.content.decode()
    assert response.status_code == 400
    assert "heat threshold" in page and "less than or equal to 1.5" in page
    assert "turn cap per user message" in page and "whole number" in page
    assert "Select a valid choice" in page
    # What was ticked stays ticked.
    assert page.count('name="members"') == 3 and page.count(" checked") >= 3


def test_it_refuses_someone_elses_characters(client, alice, bob, make_cast):
    mine = make_cast(alice)
    theirs = make_cast(bob, names=("Dan Drake", "Eve Ember"))
    client.force_login(alice)
    response = client.post(reverse("group_new"), group_form([mine[0], theirs[0]]))
    assert response.status_code == 400
    assert "That character is not one of yours." in response.content.decode()
    assert not ChatSession.objects.exists()
    # Nor are they offered.
    assert "Dan Drake" not in client.get(reverse("group_new")).content.decode()


def test_posts_need_the_csrf_token(alice, make_cast):
    from django.test import Client

    cast = make_cast(alice)
    session = make_group(alice, cast)
    client = Client(enforce_csrf_checks=True)
    client.force_login(alice)
    assert client.post(reverse("group_new"), group_form(cast)).status_code == 403
    response = client.post(reverse("group_replay", args=[session.pk]), {"policy": "prepass"})
    assert response.status_code == 403
    assert ChatSession.objects.count() == 1


def test_strangers_get_404_for_replay_and_side_by_side(client, alice, bob, make_cast):
    cast = make_cast(alice)
    one, two = make_group(alice, cast), make_group(alice, cast)
    client.force_login(bob)
    assert client.get(reverse("group_versus", args=[one.pk, two.pk])).status_code == 404
    response = client.post(reverse("group_replay", args=[one.pk]), {"policy": "prepass"})
    assert response.status_code == 404
    assert ChatSession.objects.count() == 2


async def test_a_foreign_or_missing_speaker_is_refused(async_client, alice, make_cast):
    cast = await sync_to_async(make_cast)(alice)
    session = await sync_to_async(make_group)(alice, cast, order="manual")
    await sync_to_async(async_client.force_login)(alice)
    assert await send(async_client, session, "Hello", speaker="mallory") == 400
    assert await send(async_client, session, "Hello") == 400
    assert await NodeRow.objects.filter(session=session).acount() == 0


# --- a group turn, end to end --------------------------------------------------------------


async def test_a_group_chat_runs_end_to_end(async_client, alice, make_cast, group_llm):
    cast = await sync_to_async(make_cast)(alice)
    session = await sync_to_async(make_group)(alice, cast)
    await sync_to_async(async_client.force_login)(alice)

    assert await send(async_client, session, "Ann, how was the hunt today?") == 204
    rows = await nodes_of(session)
    decisions = [r for r in rows if r.kind == NodeKind.DECISION]
    assert decisions and all(r.persona == "director" for r in decisions)
    # Ann was named and answered; the chat then quieted down by itself.
    spoken = [r for r in rows if r.persona == "director/ann" and r.action == "reply"]
    assert spoken and spoken[0].content == "Ann Archer here, line 1."
    assert rows[-1].persona == "director" and rows[-1].action == "pass"

    page = (await async_client.get(session.get_absolute_url())).content.decode()
    transcript = page.split('id="transcript"')[1].split('id="send-form"')[0]
    # Lines under the characters' names, not their persona paths; the silence is subtle.
    assert re.search(
        r'>\s*Ann Archer\s*</button>\s*<div class="text" hx-disable>Ann Archer here', transcript
    )
    assert ">director/ann<" not in transcript
    assert "(nobody else speaks)" in transcript
    assert 'class="line from-persona passed" data-speaker="director"' in transcript
    # The step tree shows each decision with its verdict, reason and numbers.
    silent = next(r for r in reversed(decisions) if r.data["speak"] is False)
    assert "stays silent" in silent.content
    assert f'id="n-{silent.id}"' in page
    row = page.split(f'id="n-{silent.id}"')[1].split("</li>")[0]
    assert 'class="verdict v-silent"' in row and "heat " in row and " / 0.60" in row
    # The heat pane shows every character's latest heat, from the latest decision nodes.
    heat = section(page, "heat")
    for character in cast:
        latest = next(r for r in reversed(decisions) if r.data["character"] == character.slug)
        assert f'data-character="{character.slug}"' in heat
        value = f"{latest.data['numbers']['heat']:.2f}"
        cell = heat.split(f'data-character="{character.slug}"')[1].split("</tr>")[0]
        assert f'<span class="heat-value">{value}</span>' in cell
    assert "spoke" in heat.split('data-character="ann"')[1].split("</tr>")[0]


async def test_the_inspector_shows_a_decision_with_all_numbers(
    async_client, alice, make_cast, group_llm
):
    cast = await sync_to_async(make_cast)(alice)
    session = await sync_to_async(make_group)(alice, cast)
    await sync_to_async(async_client.force_login)(alice)
    await send(async_client, session, "Bob, bread today?")
    decision = next(r for r in await nodes_of(session) if r.kind == NodeKind.DECISION)
    html = (
        await async_client.get(f"{session.get_absolute_url()}inspect/{decision.id}/")
    ).content.decode()
    for key in ("heat", "threshold", "fatigue", "heat_before", "boost_mention"):
        assert f"<dt>{key}</dt>" in html
    assert "<dt>reason</dt>" in html and "<dt>policy</dt><dd>heuristic</dd>" in html


async def test_the_policy_table_counts_prepass_calls_from_the_nodes(
    async_client, alice, make_cast, group_llm
):
    cast = await sync_to_async(make_cast)(alice)
    session = await sync_to_async(make_group)(alice, cast, policy="prepass")
    await sync_to_async(async_client.force_login)(alice)
    await send(async_client, session, "Cara, what are you brewing?")
    await send(async_client, session, "Bob, and you?")

    rows = await nodes_of(session)
    called = [r for r in rows if r.kind == NodeKind.DECISION and r.call]
    assert called  # every pre-pass decision carries its LLM call
    tokens = sum(r.call["prompt_tokens"] + r.call["completion_tokens"] for r in called)
    heard = {r.data["heard"] for r in rows if r.kind == NodeKind.DECISION}
    page = (await async_client.get(session.get_absolute_url())).content.decode()
    table = section(page, "policies")
    prepass = table.split('data-policy="prepass"')[1].split("</tr>")[0]
    assert f'<td class="num calls">{len(called)} ' in prepass
    assert f'<td class="num tokens">{tokens} ' in prepass
    assert f'<td class="num messages">{len(heard)}</td>' in prepass
    # The same figures the core measures.
    full = await sync_to_async(path_rows)(session.pk, rows[-1].id, with_call=True)
    (cost,) = policy_costs([to_node(r) for r in full])
    assert (cost.llm_calls, cost.tokens) == (len(called), tokens)
    # Added latency: each round of concurrent pre-pass calls waits for its slowest call.
    slowest: dict[str, float] = {}
    for r in called:
        slowest[r.data["heard"]] = max(slowest.get(r.data["heard"], 0.0), r.call["latency_s"])
    per_message = sum(slowest.values()) / len(heard)
    assert f'<td class="num latency">{per_message:.2f}</td>' in prepass
    # Pre-pass decisions show their LLM call in the inspector, like other LLM nodes.
    html = (
        await async_client.get(f"{session.get_absolute_url()}inspect/{called[0].id}/")
    ).content.decode()
    assert "messages sent (2)" in html and "You are the judgement of" in html


async def test_manual_order_sends_the_picked_speaker(async_client, alice, make_cast, group_llm):
    cast = await sync_to_async(make_cast)(alice)
    session = await sync_to_async(make_group)(alice, cast, order="manual")
    await sync_to_async(async_client.force_login)(alice)
    page = (await async_client.get(session.get_absolute_url())).content.decode()
    form = page.split('id="send-form"')[1].split("</form>")[0]
    assert 'name="speaker"' in form and '<option value="cara">Cara Cole</option>' in form

    assert await send(async_client, session, "Anyone there?", speaker="cara") == 204
    rows = await nodes_of(session)
    assert rows[0].data == {"speaker": "cara"}
    said = [r.persona for r in rows if r.persona.count("/") == 1 and r.action == "reply"]
    assert said == ["director/cara"]

    # A replay keeps the pick: the speaker travels with the user's line.
    lines = await sync_to_async(group_views.user_lines)(session)
    assert [(line.text, line.data) for line in lines] == [("Anyone there?", {"speaker": "cara"})]


# --- replay under another policy --------------------------------------------------------------


async def test_replay_feeds_the_same_lines_under_another_policy(
    async_client, alice, make_cast, group_llm
):
    cast = await sync_to_async(make_cast)(alice)
    source = await sync_to_async(make_group)(alice, cast, policy="prepass", turn_cap=4)
    await sync_to_async(async_client.force_login)(alice)
    lines = ["Ann, how was the hunt?", "Bob, any bread left?"]
    for text in lines:
        await send(async_client, source, text)

    response = await async_client.post(
        reverse("group_replay", args=[source.pk]), {"policy": "heuristic", "order": "pooled"}
    )
    replay = await ChatSession.objects.exclude(pk=source.pk).aget(owner=alice)
    assert response.status_code == 302
    assert response["Location"] == reverse("group_versus", args=[source.pk, replay.pk])
    await runs.wait(replay.pk)

    assert replay.members == source.members and replay.mode == "autonomous"
    settings = replay.group_settings
    assert (settings["policy"], settings["order"], settings["replay_of"]) == (
        "heuristic",
        "pooled",
        source.pk,
    )
    assert settings["turn_cap"] == 4
    replayed = [
        r.content for r in await nodes_of(replay) if r.kind == "inbound" and r.sender == "user"
    ]
    assert replayed == lines
    assert (await nodes_of(replay))[-1].action == "pass"  # both turns ran to the end

    page = (await async_client.get(response["Location"])).content.decode()
    assert page.count('class="versus-col"') == 2
    assert f'href="{source.get_absolute_url()}"' in page
    assert f'href="{replay.get_absolute_url()}"' in page
    assert 'data-policy="prepass"' in page and 'data-policy="heuristic"' in page
    assert re.search(r"Ann Archer</span>\s*<div class=\"text\" hx-disable>Ann Archer here", page)
    # While a replay runs the columns poll; this is what they fetch.
    part = (await async_client.get(response["Location"] + "?part=columns")).content.decode()
    assert part.lstrip().startswith('<div id="versus"') and "<html" not in part
    # The source's debugger links to the comparison.
    debugger = (await async_client.get(source.get_absolute_url())).content.decode()
    assert reverse("group_versus", args=[source.pk, replay.pk]) in debugger


async def test_replay_refuses_an_unknown_policy_or_an_empty_branch(async_client, alice, make_cast):
    cast = await sync_to_async(make_cast)(alice)
    source = await sync_to_async(make_group)(alice, cast)
    await sync_to_async(async_client.force_login)(alice)
    url = reverse("group_replay", args=[source.pk])
    assert (await async_client.post(url, {"policy": "vibes"})).status_code == 400
    assert (await async_client.post(url, {"policy": "prepass"})).status_code == 409
    assert await ChatSession.objects.acount() == 1


async def test_character_and_model_text_is_escaped(async_client, alice, make_cast, group_llm):
    cast = await sync_to_async(make_cast)(
        alice, names=("Ann <b>Archer</b>", "Bob <script>x()</script>")
    )
    session = await sync_to_async(make_group)(alice, cast)
    await sync_to_async(async_client.force_login)(alice)
    await send(async_client, session, "Ann, <img src=x onerror=alert(1)>?")
    page = (await async_client.get(session.get_absolute_url())).content.decode()
    assert "<script>x()" not in page and "<b>Archer</b>" not in page
    assert "<img src=x" not in page and "&lt;img src=x" in page


# --- live updates ------------------------------------------------------------------------------


async def test_a_decision_node_pushes_the_heat_pane_out_of_band(alice, bob, make_cast):
    from personaweb.personas import Node, derive
    from personaweb.web import building
    from personaweb.web.live import Broadcaster, Frames
    from tests.web.test_consumers import connect

    cast = await sync_to_async(make_cast)(alice)
    session = await sync_to_async(make_group)(alice, cast)
    # Strangers do not get in, group chat or not.
    communicator, connected = await connect(session, bob)
    assert not connected
    await communicator.disconnect()

    communicator, connected = await connect(session, alice)
    try:
        assert connected
        resync = await communicator.receive_from()
        assert 'id="heat"' in resync and 'id="policies"' in resync
        store = OrmStore(session.pk)
        inbound = await store.add(
            Node(
                id="a" * 32,
                parent_id=None,
                persona="director",
                kind=NodeKind.INBOUND,
                content="Ann?",
                sender="user",
            )
        )
        decision = await store.add(
            Node(
                id="b" * 32,
                parent_id=inbound.id,
                persona="director",
                kind=NodeKind.DECISION,
                content="Bob Baker stays silent: heat 0.31 below 0.60, not mentioned",
                data={
                    "character": "bob",
                    "speak": False,
                    "policy": "heuristic",
                    "reason": "heat 0.31 below 0.60, not mentioned",
                    "numbers": {"heat": 0.31, "threshold": 0.6, "fatigue": 0.0},
                    "chosen": False,
                    "order": "natural",
                    "heard": inbound.id,
                },
            )
        )
        await sync_to_async(ChatSession.objects.filter(pk=session.pk).update)(
            active_node=decision.id
        )
        # What a run's broadcaster does when the director records this decision.
        root = await sync_to_async(building.hierarchy_for)(session)
        frames = await sync_to_async(Frames)(session, root.describe(), building.kind_of(session))
        broadcaster = Broadcaster(session.pk, frames)
        state = derive([inbound, decision], root.path, root.speakers())
        await broadcaster.node_changed(decision, state, True)
        await broadcaster.close()
        html = await communicator.receive_from()
        assert "stays silent" in html and 'class="verdict v-silent"' in html
        assert '<section id="heat" class="heat" aria-label="heat" hx-swap-oob="true">' in html
        heat = html.split('id="heat"')[1].split("</section>")[0]
        bob_row = heat.split('data-character="bob"')[1].split("</tr>")[0]
        assert '<span class="heat-value">0.31</span>' in bob_row and "silent" in bob_row
    finally:
        await communicator.disconnect()
