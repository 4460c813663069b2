"""The comparison pages: ownership, the form, votes, exports, re-run and the LLM judge."""

from __future__ import annotations

import csv
import io
import json
import re

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from personaweb.compare import running
from personaweb.compare.models import Comparison, Vote
from personaweb.compare.setup import DEFAULT_SCRIPT, ContenderSpec, create_comparison
from personaweb.llm.scripted_server import ServerError

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_runs")]

SCRIPT = ["Hello, who are you?", "You are a fool."]


def form_data(character_pk: int, **over) -> dict:
    data = {
        "character": str(character_pk),
        "title": "",
        "script": "\n".join(SCRIPT),
        "samples": "1",
        "contenders-TOTAL_FORMS": "2",
        "contenders-INITIAL_FORMS": "0",
        "contenders-MIN_NUM_FORMS": "2",
        "contenders-MAX_NUM_FORMS": "4",
        "contenders-0-strategy": "single",
        "contenders-0-model": "",
        "contenders-0-temperature": "0.7",
        "contenders-1-strategy": "linear",
        "contenders-1-model": "tiny",
        "contenders-1-temperature": "0.2",
    }
    data.update(over)
    return data


@pytest.fixture
def finished(alice, sara, compare_llm):
    """A blind comparison of single against nested, played to the end."""

    async def make() -> Comparison:
        comparison = await sync_to_async(create_comparison)(
            alice, sara, SCRIPT, [ContenderSpec("single"), ContenderSpec("nested")], blind=True
        )
        await running.start(comparison)
        await running.wait(comparison)
        return comparison

    return make


# --- ownership ---------------------------------------------------------------------------------


def test_every_page_of_a_comparison_is_the_owners_only(client, alice, bob, sara):
    comparison = create_comparison(
        alice, sara, SCRIPT, [ContenderSpec("single"), ContenderSpec("nested")]
    )
    contender = comparison.contenders.first()
    client.force_login(bob)
    pk = comparison.pk
    for name, args in [
        ("detail", [pk]),
        ("board", [pk]),
        ("column", [pk, contender.pk]),
        ("export_json", [pk]),
        ("export_csv", [pk]),
        ("export_figures_csv", [pk]),
        ("chart", [pk, "score"]),
    ]:
        assert client.get(reverse(f"compare:{name}", args=args)).status_code == 404, name
    for name in ("vote", "reveal", "rerun", "resume", "judge", "delete"):
        response = client.post(reverse(f"compare:{name}", args=[pk]), {"line": 0})
        assert response.status_code == 404, name
    # Nor can bob start from alice's settings, or pick her character for his own comparison.
    assert client.get(reverse("compare:new") + f"?from={pk}").status_code == 404
    response = client.post(reverse("compare:new"), form_data(sara.pk))
    assert response.status_code == 400
    assert b"Select a valid choice" in response.content
    assert Comparison.objects.count() == 1
    # And bob's list does not show it.
    assert comparison.title.encode() not in client.get(reverse("compare:list")).content


def test_pages_need_a_login(client, alice, sara):
    response = client.get(reverse("compare:list"))
    assert response.status_code == 302 and "/accounts/login/" in response["Location"]


# --- the form ------------------------------------------------------------------------------------


def test_the_form_offers_the_default_script_and_two_contenders(client, alice, sara):
    client.force_login(alice)
    page = client.get(reverse("compare:new")).content.decode()
    assert DEFAULT_SCRIPT[0].replace("'", "&#x27;") in page
    assert 'name="contenders-TOTAL_FORMS" value="2"' in page
    assert "contenders-__prefix__-strategy" in page  # the row template for a third and fourth


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"script": "\n  \n"}, "Write at least one line"),
        ({"script": "\n".join(f"line {i}" for i in range(21))}, "At most 20 lines"),
        ({"contenders-TOTAL_FORMS": "1"}, "Please submit at least 2 forms."),
        ({"contenders-1-temperature": "3"}, "less than or equal to 2"),
        ({"contenders-1-strategy": "shouting"}, "Select a valid choice"),
    ],
)
def test_the_form_explains_what_is_wrong(client, alice, sara, change, message):
    client.force_login(alice)
    response = client.post(reverse("compare:new"), form_data(sara.pk, **change))
    assert response.status_code == 400
    assert message in response.content.decode()
    assert not Comparison.objects.exists()


def test_a_character_without_sample_lines_is_refused(client, alice, sara):
    sara.data = {**sara.data, "sample_lines": []}
    sara.save()
    client.force_login(alice)
    response = client.post(reverse("compare:new"), form_data(sara.pk))
    assert response.status_code == 400 and b"has no sample lines" in response.content


async def test_creating_starts_every_contender(async_client, alice, sara, compare_llm):
    await sync_to_async(async_client.force_login)(alice)
    response = await async_client.post(reverse("compare:new"), form_data(sara.pk))
    comparison = await Comparison.objects.aget()
    assert response.status_code == 302 and response["Location"] == f"/compare/{comparison.pk}/"
    await running.wait(comparison)
    contenders = [c async for c in comparison.contenders.select_related("session")]
    assert [(c.strategy, c.model, c.temperature) for c in contenders] == [
        ("single", "", 0.7),
        ("linear", "tiny", 0.2),
    ]
    assert contenders[1].session.profiles["pipeline/responder"]["model"] == "tiny"
    page = (await async_client.get(response["Location"])).content.decode()
    assert page.count('data-state="done"') == 4  # two lines, two contenders
    assert "Single says: thou didst say &#x27;Hello, who are you?&#x27;." in page


# --- votes ---------------------------------------------------------------------------------------


async def test_votes_are_one_per_line_changeable_and_tallied(async_client, alice, finished):
    comparison = await finished()
    a, b = [c async for c in comparison.contenders.order_by("position")]
    await sync_to_async(async_client.force_login)(alice)
    url = reverse("compare:vote", args=[comparison.pk])
    page = (await async_client.get(comparison.get_absolute_url())).content.decode()
    assert a.label not in page and "hidden" in page  # blind: no labels before voting

    await async_client.post(url, {"line": 0, "contender": a.pk}, headers={"HX-Request": "true"})
    await async_client.post(url, {"line": 0, "contender": b.pk}, headers={"HX-Request": "true"})
    assert [v async for v in Vote.objects.values_list("line_index", "contender_id")] == [
        (0, b.pk)
    ]  # changed, not doubled
    response = await async_client.post(
        url, {"line": 1, "contender": b.pk}, headers={"HX-Request": "true"}
    )
    board = response.content.decode()
    # Every line voted: labels and tallies are shown.
    assert a.label in board and b.label in board
    assert '<dd class="votes">2</dd>' in board and '<dd class="votes">0</dd>' in board


async def test_votes_for_foreign_contenders_or_missing_lines_are_refused(
    async_client, alice, sara, finished
):
    comparison = await finished()
    other = await sync_to_async(create_comparison)(
        alice, sara, SCRIPT, [ContenderSpec("single"), ContenderSpec("nested")], blind=True
    )
    foreign = await other.contenders.afirst()
    mine = await comparison.contenders.afirst()
    await sync_to_async(async_client.force_login)(alice)
    url = reverse("compare:vote", args=[comparison.pk])
    assert (await async_client.post(url, {"line": 0, "contender": foreign.pk})).status_code == 400
    assert (await async_client.post(url, {"line": 9, "contender": mine.pk})).status_code == 400
    assert (await async_client.post(url, {"line": "x"})).status_code == 400
    assert not await Vote.objects.aexists()


async def test_reveal_shows_labels_before_voting(async_client, alice, finished):
    comparison = await finished()
    await sync_to_async(async_client.force_login)(alice)
    response = await async_client.post(
        reverse("compare:reveal", args=[comparison.pk]), headers={"HX-Request": "true"}
    )
    assert "single · default model · t=0.7" in response.content.decode()


# --- exports -------------------------------------------------------------------------------------


async def test_exports_hold_a_row_per_reply_with_its_metrics(async_client, alice, finished):
    comparison = await finished()
    first = await comparison.contenders.order_by("position").afirst()
    await Vote.objects.acreate(comparison=comparison, line_index=1, contender=first, voter=alice)
    await sync_to_async(async_client.force_login)(alice)

    response = await async_client.get(reverse("compare:export_json", args=[comparison.pk]))
    assert response["Content-Disposition"].endswith(f'comparison-{comparison.pk}.json"')
    data = json.loads(response.content)
    assert data["script"] == SCRIPT and len(data["contenders"]) == 2
    assert len(data["replies"]) == 4
    row = data["replies"][3]
    assert row["line_index"] == 1 and row["user_line"] == SCRIPT[1]
    assert 0 <= row["style_probability"] <= 1 and row["style_distance"] >= 0
    assert row["llm_calls"] >= 1 and row["tokens"] > 0 and row["length_words"] > 0
    votes = {(r["line_index"], r["strategy"]): r["votes"] for r in data["replies"]}
    assert votes[(1, first.strategy)] == 1 and sum(votes.values()) == 1

    response = await async_client.get(reverse("compare:export_csv", args=[comparison.pk]))
    assert response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 4
    assert rows[0]["user_line"] == SCRIPT[0] and rows[0]["state"] == "done"
    assert {r["strategy"] for r in rows} == {"single", "nested"}
    assert all(float(r["style_probability"]) >= 0 for r in rows)
    single = next(r for r in rows if r["strategy"] == "single")
    assert (single["llm_calls"], single["temperature"]) == ("1", "0.7")


def test_csv_neutralises_formulas_in_replies():
    from personaweb.compare.exports import _cell

    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)"
    assert _cell("Hark") == "Hark" and _cell(None) == ""


# --- re-run, judge, delete ----------------------------------------------------------------------


async def test_rerun_makes_a_new_comparison_with_the_same_settings(async_client, alice, finished):
    comparison = await finished()
    await sync_to_async(async_client.force_login)(alice)
    response = await async_client.post(reverse("compare:rerun", args=[comparison.pk]))
    copy = await Comparison.objects.exclude(pk=comparison.pk).aget()
    assert response["Location"] == copy.get_absolute_url()
    await running.wait(copy)
    assert (copy.script, copy.blind, copy.character_id) == (
        comparison.script,
        True,
        comparison.character_id,
    )
    old = sorted([(c.strategy, c.model, c.temperature) async for c in comparison.contenders.all()])
    new = sorted([(c.strategy, c.model, c.temperature) async for c in copy.contenders.all()])
    assert old == new
    sessions = {c.session_id async for c in copy.contenders.all()}
    assert not sessions & {c.session_id async for c in comparison.contenders.all()}

    # "Re-run with changes" pre-fills the form from the old comparison.
    page = await async_client.get(reverse("compare:new") + f"?from={comparison.pk}")
    html = page.content.decode()
    assert "Hello, who are you?\nYou are a fool." in html
    assert re.search(r"<input type=\"checkbox\" name=\"blind\"[^>]* checked>", html)


async def test_the_llm_judge_rates_every_reply(async_client, alice, finished, compare_llm):
    comparison = await finished()
    await sync_to_async(async_client.force_login)(alice)
    await async_client.post(reverse("compare:reveal", args=[comparison.pk]))
    response = await async_client.post(
        reverse("compare:judge", args=[comparison.pk]), headers={"HX-Request": "true"}
    )
    assert response.content.decode().count("judge 0.60") == 4
    verdict = {"score": 0.6, "reason": "Archaic enough."}
    judged = [c.judge async for c in comparison.contenders.all()]
    assert judged == [{"0": verdict, "1": verdict}] * 2
    prompts = [
        r for r in compare_llm.requests if r["messages"][0]["content"].startswith("You rate")
    ]
    assert len(prompts) == 4 and "Leave all the rest to me." in prompts[0]["messages"][0]["content"]


async def test_a_failing_judge_is_shown(async_client, alice, finished, compare_llm):
    comparison = await finished()
    await sync_to_async(async_client.force_login)(alice)
    await async_client.post(reverse("compare:reveal", args=[comparison.pk]))
    no_retry = {"x-should-retry": "false"}
    compare_llm.enqueue(*[ServerError(400, headers=no_retry)] * 3)  # three of four calls fail
    response = await async_client.post(
        reverse("compare:judge", args=[comparison.pk]), headers={"HX-Request": "true"}
    )
    html = response.content.decode()
    assert "3 rating(s) failed" in html and html.count("judge failed: LLMRequestError") == 3
    assert html.count("judge 0.60") == 1


def test_delete_removes_the_comparison_and_its_sessions(client, alice, sara):
    from personaweb.web.models import ChatSession

    comparison = create_comparison(
        alice, sara, SCRIPT, [ContenderSpec("single"), ContenderSpec("nested")]
    )
    client.force_login(alice)
    response = client.post(reverse("compare:delete", args=[comparison.pk]))
    assert response.status_code == 302
    assert not Comparison.objects.exists() and not ChatSession.objects.exists()


def test_llm_output_is_escaped(client, alice, sara):
    from personaweb.personas import Action, Node, NodeKind, NodeStatus
    from personaweb.web.store import OrmStore

    comparison = create_comparison(
        alice, sara, SCRIPT, [ContenderSpec("single"), ContenderSpec("nested")]
    )
    session_id = comparison.contenders.first().session_id
    store = OrmStore(session_id)
    store.add_many(
        [
            Node(
                id="a" * 32,
                parent_id=None,
                persona="character",
                kind=NodeKind.INBOUND,
                content="<b>hi</b>",
                sender="user",
            ),
            Node(
                id="b" * 32,
                parent_id="a" * 32,
                persona="character",
                kind=NodeKind.PROPOSAL,
                status=NodeStatus.APPROVED,
                action=Action.REPLY,
                content="<script>alert(1)</script>",
            ),
        ]
    )
    client.force_login(alice)
    page = client.get(comparison.get_absolute_url()).content.decode()
    assert "<script>alert(1)</script>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "&lt;b&gt;hi&lt;/b&gt;" in page


async def test_only_the_owner_can_subscribe_to_a_columns_feed(alice, bob, sara):
    from channels.testing import WebsocketCommunicator
    from django.test import Client

    from personaweb.asgi import application

    comparison = await sync_to_async(create_comparison)(
        alice, sara, SCRIPT, [ContenderSpec("single"), ContenderSpec("nested")]
    )
    contender = await comparison.contenders.afirst()

    def cookie(user) -> bytes:
        client = Client()
        client.force_login(user)
        return f"sessionid={client.cookies['sessionid'].value}".encode()

    for user, allowed in ((alice, True), (bob, False)):
        headers = [
            (b"origin", b"http://localhost"),
            (b"host", b"localhost"),
            (b"cookie", await sync_to_async(cookie)(user)),
        ]
        feed = WebsocketCommunicator(application, f"/ws/s/{contender.session_id}/", headers=headers)
        connected, _ = await feed.connect()
        assert connected is allowed, user
        await feed.disconnect()
