"""Review decisions out as training data, checked record by record against the nodes they
came from: a review session played with the scripted LLM through the pages' own actions
(reject, feedback, edit, approve), then exported over the API and from the page."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any

import pytest
from asgiref.sync import sync_to_async

from personaweb.compare import running
from personaweb.compare.setup import ContenderSpec, create_comparison
from personaweb.personas import NodeKind
from personaweb.web import actions, runs
from personaweb.web.models import NodeRow
from personaweb.web.store import load_node, load_tree, path_rows
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db(transaction=True)


async def waiting(session) -> NodeRow:
    """The proposal the session's run stopped at, for a person to review."""
    await runs.wait(session.pk)
    leaf = (await sync_to_async(load_tree)(session)).latest_leaf()
    row = await NodeRow.objects.aget(pk=leaf)
    assert row.status == "proposed", (row.persona, row.kind, row.status, row.content)
    return row


async def review_session(session) -> dict[str, NodeRow]:
    """A turn where a person rejects, answers with feedback and edits the responder, and
    approves everything else."""
    await actions.send(session, "Hi, who are you?")
    o1 = await waiting(session)
    await actions.act(session, o1.id, "approve")
    r1 = await waiting(session)
    await actions.act(session, r1.id, "reject")
    r2 = await waiting(session)
    await actions.act(session, r2.id, "feedback", text="be colder")
    r3 = await waiting(session)
    await actions.act(session, r3.id, "edit", content="Who dares ask?")
    approved = []
    for _ in range(3):  # orchestrator -> rewriter, the rewriter, the orchestrator's reply
        node = await waiting(session)
        approved.append(node)
        await actions.act(session, node.id, "approve")
    await runs.wait(session.pk)
    edit = await NodeRow.objects.aget(session=session, kind=NodeKind.EDIT.value)
    nodes = {"o1": o1, "r1": r1, "r2": r2, "r3": r3, "edit": edit}
    return nodes | dict(zip(("o2", "w1", "o3"), approved, strict=True))


async def jsonl(async_client, token: str, url: str, **query: Any) -> list[dict[str, Any]]:
    response = await async_client.get(url, query, headers=bearer(token))
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("application/jsonl")
    return [json.loads(line) for line in response.content.decode().splitlines()]


async def fresh(row: NodeRow) -> NodeRow:
    return await NodeRow.objects.aget(pk=row.pk)


async def sent(row: NodeRow) -> list[dict[str, str]]:
    """The exact messages a node's call sent (the store keeps prompts as differences)."""
    loaded = await sync_to_async(load_node)(row.session_id, row.pk)
    assert loaded is not None and loaded[0].call is not None
    return loaded[0].call.messages


async def test_each_review_decision_becomes_the_pair_its_shape_makes(
    async_client, alice, alice_token, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice)
    n = await review_session(session)
    pairs = await jsonl(async_client, alice_token, "/api/training/preferences", session=session.pk)

    edit = await fresh(n["edit"])
    assert edit.content == "Who dares ask?"
    # The responder's three takes each lost to the person's edit, by the rule of their shape.
    by_rule = {p["rule"]: p for p in pairs}
    assert [p["rule"] for p in pairs] == ["rejected", "feedback", "edit"]
    for rule, lost in (("rejected", n["r1"]), ("feedback", n["r2"]), ("edit", n["r3"])):
        pair, lost = by_rule[rule], await fresh(lost)
        assert pair["rejected_node"] == pair["prompt_node"] == lost.id
        assert pair["prompt"] == await sent(lost)  # the exact messages sent
        assert pair["rejected"] == [{"role": "assistant", "content": lost.content}]
        assert pair["chosen"] == [{"role": "assistant", "content": "Who dares ask?"}]
        assert pair["chosen_node"] == edit.id and pair["chosen_by"] == "edit"
        assert pair["persona"] == "orchestrator/responder"
        assert pair["model"] == lost.call["model"] == "scripted-model"
        assert pair["session"] == session.pk and pair["character"] == session.character.slug
    assert (await fresh(n["r1"])).status == "rejected"
    assert by_rule["feedback"]["feedback"] == "be colder"


async def test_approved_replies_and_edits_become_supervised_examples(
    async_client, alice, alice_token, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice)
    n = await review_session(session)
    examples = await jsonl(async_client, alice_token, "/api/training/sft", session=session.pk)

    # What a person approved (not the rejected or superseded takes), and the edit.
    expected = [n["o1"], n["edit"], n["o2"], n["w1"], n["o3"]]
    assert [e["node"] for e in examples] == [row.id for row in expected]
    for example, row in zip(examples, expected, strict=True):
        row = await fresh(row)
        prompt = await fresh(n["r3"]) if row.kind == "edit" else row
        assert example["messages"] == [
            *await sent(prompt),
            {"role": "assistant", "content": row.content},
        ]
        assert example["prompt_node"] == prompt.id and example["persona"] == row.persona
        assert example["source"] == ("edit" if row.kind == "edit" else "approval")
    # The reply the person approved last is the character's line in the transcript.
    leaf = (await sync_to_async(load_tree)(session)).active_leaf(session.active_node)
    path = await sync_to_async(path_rows)(session.pk, leaf)
    assert path[-1].id == n["o3"].id and examples[-1]["messages"][-1]["content"] == path[-1].content


async def test_exports_filter_by_persona_character_and_date(
    async_client, alice, alice_token, bob_token, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice)
    other = await sync_to_async(make_session)(alice, title="another character")
    n = await review_session(session)
    url = "/api/training/sft"
    only_responder = await jsonl(async_client, alice_token, url, persona="orchestrator/responder")
    assert [e["node"] for e in only_responder] == [n["edit"].id]
    under_orchestrator = await jsonl(async_client, alice_token, url, persona="orchestrator")
    assert len(under_orchestrator) == 5  # the whole hierarchy sits under it
    mine = await jsonl(async_client, alice_token, url, character=session.character_id)
    assert len(mine) == 5
    assert await jsonl(async_client, alice_token, url, character=other.character_id) == []
    today = date.today()
    assert len(await jsonl(async_client, alice_token, url, since=today.isoformat())) == 5
    yesterday = (today - timedelta(days=1)).isoformat()
    assert await jsonl(async_client, alice_token, url, until=yesterday) == []
    # Everything of a person's, and nothing of anyone else's.
    assert len(await jsonl(async_client, alice_token, url)) == 5
    assert await jsonl(async_client, bob_token, url) == []
    bad = await async_client.get(url, {"since": "June"}, headers=bearer(alice_token))
    assert bad.status_code == 422


async def test_the_page_downloads_the_same_records(client_and_session):
    page, api = client_and_session
    assert page == api


@pytest.fixture
async def client_and_session(async_client, alice, alice_token, make_session, llm_server):
    session = await sync_to_async(make_session)(alice)
    await review_session(session)
    await sync_to_async(async_client.force_login)(alice)
    response = await async_client.get(
        "/training/preferences.jsonl", {"session": session.pk, "persona": ""}
    )
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    page = [json.loads(line) for line in response.content.decode().splitlines()]
    api = await jsonl(async_client, alice_token, "/api/training/preferences", session=session.pk)
    assert len(page) == 3
    return page, api


async def test_a_blind_vote_becomes_a_pair_of_the_two_replies(
    async_client, alice, alice_token, make_session, llm_server
):
    session = await sync_to_async(make_session)(alice)
    comparison = await sync_to_async(create_comparison)(
        alice,
        session.character,
        ["Good evening.", "What do you want?"],
        [ContenderSpec("single"), ContenderSpec("nested")],
        blind=True,
    )
    await running.start(comparison)
    await running.wait(comparison)
    contenders = [c async for c in comparison.contenders.order_by("position")]
    nested = next(c for c in contenders if c.strategy == "nested")
    single = next(c for c in contenders if c.strategy == "single")
    base = f"/api/comparisons/{comparison.pk}"
    # Blind: the replies are there to vote on, under letters only.
    blind = (await async_client.get(f"{base}/results", headers=bearer(alice_token))).json()
    assert blind["labels_shown"] is False
    assert all("strategy" not in r and "contender" not in r for r in blind["replies"])
    vote = await async_client.post(
        f"{base}/votes",
        {"line": 1, "contender": nested.pk},
        content_type="application/json",
        headers=bearer(alice_token),
    )
    assert vote.status_code == 201 and vote.json() == {"line": 1, "contender": nested.pk}

    pairs = await jsonl(async_client, alice_token, "/api/training/votes")
    assert len(pairs) == 1
    pair = pairs[0]
    replies = {(r["letter"], r["line_index"]): r["reply"] for r in blind["replies"]}
    assert pair["chosen"][0]["content"] == replies[(nested.letter, 1)]
    assert pair["rejected"][0]["content"] == replies[(single.letter, 1)]
    assert pair["chosen"] != pair["rejected"]
    assert pair["chosen_contender"]["strategy"] == "nested"
    assert pair["rejected_contender"]["strategy"] == "single"
    assert pair["line"] == 1 and pair["comparison"] == comparison.pk
    # The conversation as the winner heard it, up to the line voted on.
    assert pair["prompt"] == [
        {"role": "user", "content": "Good evening."},
        {"role": "assistant", "content": replies[(nested.letter, 0)]},
        {"role": "user", "content": "What do you want?"},
    ]
