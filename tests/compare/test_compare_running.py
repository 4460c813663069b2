"""Creating and running comparisons: sessions per contender, concurrent runs, metrics."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from personaweb.compare import metrics, running
from personaweb.compare.models import Comparison
from personaweb.compare.setup import ContenderSpec, create_comparison
from personaweb.web.store import to_node
from tests.polling import eventually

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_runs")]

SCRIPT = ["I am Joe. Who are you?", "What do you want most?", "You are a fool."]


def test_creating_makes_one_autonomous_session_per_contender(alice, sara):
    comparison = create_comparison(
        alice,
        sara,
        SCRIPT,
        [ContenderSpec("single", "small-model", 0.3), ContenderSpec("linear", "", 1.1)],
    )
    single, linear = comparison.contenders.order_by("position")
    assert (single.session.strategy, linear.session.strategy) == ("single", "linear")
    assert single.session.mode == linear.session.mode == "autonomous"
    assert single.session.hierarchy == "dialogue" and single.session.character == sara
    # Every persona that calls a model gets the contender's model and temperature; the
    # code-managed pipeline calls none and gets no profile.
    assert set(single.session.profiles) == {"character"}
    assert single.session.profiles["character"]["model"] == "small-model"
    assert single.session.profiles["character"]["temperature"] == 0.3
    assert set(linear.session.profiles) == {
        "pipeline/responder",
        "pipeline/style_rewriter",
        "pipeline/alignment",
    }
    assert {p["temperature"] for p in linear.session.profiles.values()} == {1.1}
    assert {p["model"] for p in linear.session.profiles.values()} == {""}


async def test_contenders_play_the_script_concurrently_to_the_end(alice, sara, compare_llm):
    specs = [ContenderSpec("single"), ContenderSpec("nested"), ContenderSpec("linear")]
    comparison = await sync_to_async(create_comparison)(alice, sara, SCRIPT, specs)
    await running.start(comparison)
    await running.wait(comparison)
    columns = await sync_to_async(metrics.columns)(comparison)
    assert [c.status for c in columns] == ["done", "done", "done"]
    single, nested, linear = columns
    assert [t.reply for t in single.turns] == [
        f"Single says: thou didst say '{line}'." for line in SCRIPT
    ]
    assert nested.turns[2].reply == "Hark, Responder hears 'You are a fool.'."
    # Each line went under the previous reply: the session is one conversation.
    assert [t.line for t in nested.turns] == SCRIPT
    # Cost per turn: single is one call, nested five (orchestrator thrice, two children),
    # linear three (responder, rewriter, alignment).
    assert [t.calls for t in single.turns] == [1, 1, 1]
    assert [t.calls for t in nested.turns] == [5, 5, 5]
    assert [t.calls for t in linear.turns] == [3, 3, 3]
    assert all(t.tokens > 0 and t.latency_s > 0 for c in columns for t in c.turns)
    assert [t.alignment for t in linear.turns] == [0.75, 0.75, 0.75]
    assert single.turns[0].alignment is None
    # Style: a probability and a distance per reply, consistency per column.
    for column in columns:
        assert all(t.style is not None and 0 <= t.style.probability <= 1 for t in column.turns)
        assert column.consistency is not None and 0 <= column.consistency <= 1
        assert column.calls == sum(t.calls for t in column.turns)


async def test_a_failing_contender_does_not_stop_the_others(alice, sara, compare_llm):
    # The scripted server answers 404 for this model (conftest.BROKEN_MODEL).
    specs = [ContenderSpec("nested", "no-such-model"), ContenderSpec("single")]
    comparison = await sync_to_async(create_comparison)(alice, sara, SCRIPT, specs)
    await running.start(comparison)
    await running.wait(comparison)
    broken, fine = await sync_to_async(metrics.columns)(comparison)
    assert broken.status == "failed" and "404" in broken.error
    assert broken.turns[0].state == "failed" and broken.turns[0].calls == 1
    assert [t.state for t in broken.turns[1:]] == ["skipped", "skipped"]
    assert fine.status == "done" and all(t.done for t in fine.turns)


async def test_resume_plays_what_a_stopped_contender_left(alice, sara, compare_llm):
    comparison = await sync_to_async(create_comparison)(
        alice, sara, SCRIPT, [ContenderSpec("single"), ContenderSpec("nested")]
    )
    # Play only the first line of each, as if the process had died after it.
    await running.start(Comparison(pk=comparison.pk, script=SCRIPT[:1]))
    await running.wait(comparison)
    columns = await sync_to_async(metrics.columns)(comparison)
    assert [[t.state for t in c.turns] for c in columns] == [["done", "skipped", "skipped"]] * 2
    await running.resume(comparison, [c.contender.pk for c in columns])
    await running.wait(comparison)
    columns = await sync_to_async(metrics.columns)(comparison)
    assert all(c.complete and c.status == "done" for c in columns)
    assert [t.line for t in columns[1].turns] == SCRIPT


async def test_a_contender_stopped_mid_turn_resumes_from_its_interrupted_step(
    alice, sara, compare_llm
):
    from personaweb.web import runs
    from personaweb.web.models import NodeRow

    compare_llm.chunk_delay_s = 0.05  # slow enough to stop it mid-stream
    comparison = await sync_to_async(create_comparison)(
        alice, sara, SCRIPT, [ContenderSpec("nested"), ContenderSpec("single")]
    )
    await running.start(comparison)
    nested = await comparison.contenders.aget(position=0)
    await eventually(
        NodeRow.objects.filter(session_id=nested.session_id, status="streaming").aexists,
        "a step of the nested contender to stream",
    )
    # What a killed process leaves behind: a run cut off with its step unfinished.
    assert await runs.stop(nested.session_id)
    await running.wait(comparison)
    stopped, other = await sync_to_async(metrics.columns)(comparison)
    assert stopped.status == "interrupted" and stopped.turns[0].state == "interrupted"
    assert other.status == "done"
    compare_llm.chunk_delay_s = 0.0
    await running.resume(comparison, [nested.pk])
    await running.wait(comparison)
    stopped, _ = await sync_to_async(metrics.columns)(comparison)
    assert stopped.status == "done" and [t.line for t in stopped.turns] == SCRIPT
    # The interrupted step is kept (never lose a step); its retry is a sibling beside it.
    assert await NodeRow.objects.filter(
        session_id=nested.session_id, status="interrupted"
    ).aexists()


def test_the_page_links_each_column_to_its_debugger(client, alice, sara):
    comparison = create_comparison(
        alice, sara, SCRIPT, [ContenderSpec("single"), ContenderSpec("nested")]
    )
    client.force_login(alice)
    page = client.get(reverse("compare:detail", args=[comparison.pk])).content.decode()
    for contender in comparison.contenders.all():
        assert f'href="/s/{contender.session_id}/"' in page
        assert f'ws-connect="/ws/s/{contender.session_id}/"' in page


# --- repeated samples ---------------------------------------------------------------------------


async def test_every_line_is_answered_n_times_from_the_same_conversation_prefix(
    alice, sara, compare_llm
):
    from personaweb.compare import samples as rules
    from personaweb.web.models import ChatSession
    from personaweb.web.store import OrmStore

    specs = [ContenderSpec("single"), ContenderSpec("nested")]
    comparison = await sync_to_async(create_comparison)(alice, sara, SCRIPT, specs, samples=3)
    await running.start(comparison)
    await running.wait(comparison)
    single, nested = await sync_to_async(metrics.columns)(comparison)
    assert single.status == nested.status == "done"
    for column in (single, nested):
        assert [len(t.every_sample) for t in column.turns] == [3, 3, 3]
        assert all(t.complete and t.samples_done == 3 for t in column.turns)
        assert [s.sample for s in column.turns[1].every_sample] == [1, 2, 3]
    # Costs count every sample: single makes one call per reply, nested five.
    assert single.calls == 3 * 3 and nested.calls == 3 * 3 * 5
    assert len(single.scored) == len(nested.scored) == 9

    for contender in (single.contender, nested.contender):
        nodes = await sync_to_async(OrmStore(contender.session_id).all_nodes)()
        lines = [n for n in nodes if rules.is_line(n)]
        assert [n.content for n in lines] == SCRIPT  # one conversation, never three
        for line in lines:
            children = [n for n in nodes if n.parent_id == line.id]
            # Sample 1 and two marked branches from the very same user message.
            assert sorted(rules.sample_mark(c) or 1 for c in children) == [1, 2, 3]
        # Each next line goes on under sample 1's reply.
        by_id = {n.id: n for n in nodes}
        for line in lines[1:]:
            reply = by_id[line.parent_id]
            assert rules.sample_mark(_top_of(reply, by_id, lines)) is None
        # The debugger opens on the conversation, not on the last sample branch.
        session = await ChatSession.objects.aget(pk=contender.session_id)
        assert _line_of(by_id[session.active_node], by_id) == lines[-1].id
        assert rules.sample_mark(_top_of(by_id[session.active_node], by_id, lines)) is None

    # Independent replays of the same prefix: single's three requests for a line are identical.
    asked = [r["messages"] for r in compare_llm.requests if "This is how you talk" in str(r)]
    by_line: dict[str, list] = {}
    for messages in asked:
        by_line.setdefault(messages[-1]["content"], []).append(messages)
    assert sorted(by_line) == sorted(SCRIPT)
    for requests in by_line.values():
        assert len(requests) == 3 and requests[0] == requests[1] == requests[2]


def _line_of(node, by_id) -> str:
    from personaweb.compare import samples as rules

    while not rules.is_line(node):
        node = by_id[node.parent_id]
    return node.id


def _top_of(node, by_id, lines):
    """The child of the node's line on its path (the first node of its sample)."""
    line_ids = {line.id for line in lines}
    while node.parent_id not in line_ids:
        node = by_id[node.parent_id]
    return node


async def test_a_run_cut_off_mid_sample_finishes_that_sample_on_resume(alice, sara, compare_llm):
    from personaweb.compare import samples as rules
    from personaweb.web import runs
    from personaweb.web.models import NodeRow

    compare_llm.chunk_delay_s = 0.05  # slow enough to stop it mid-stream
    comparison = await sync_to_async(create_comparison)(
        alice, sara, SCRIPT[:2], [ContenderSpec("nested"), ContenderSpec("single")], samples=2
    )
    await running.start(comparison)
    nested = await comparison.contenders.aget(position=0)
    rows = NodeRow.objects.filter(session_id=nested.session_id)
    # Wait until sample 2 of the first line is under way (its branch is marked), then until a
    # step inside it streams, and stop the run there: what a killed process leaves behind.

    async def sample_two_streams() -> bool:
        return (
            await rows.filter(data__sample=2).aexists()
            and await rows.filter(status="streaming").aexists()
        )

    await eventually(sample_two_streams, "a step of sample 2 to stream")
    assert await runs.stop(nested.session_id)
    await running.wait(comparison)
    stopped, _ = await sync_to_async(metrics.columns)(comparison)
    assert stopped.status == "interrupted"
    assert stopped.turns[0].done and stopped.turns[0].samples[0].state == "interrupted"
    compare_llm.chunk_delay_s = 0.0
    await running.resume(comparison, [nested.pk])
    await running.wait(comparison)
    stopped, _ = await sync_to_async(metrics.columns)(comparison)
    assert stopped.status == "done"
    assert [len(t.every_sample) for t in stopped.turns] == [2, 2]
    # The cut-off sample was finished, not begun again: one branch carries the mark 2.
    line = await rows.filter(parent_id__isnull=True).aget()
    marks = [
        rules.sample_mark(n)
        for n in await sync_to_async(lambda: [to_node(r) for r in rows.filter(parent_id=line.id)])()
    ]
    assert marks.count(2) == 1 and marks.count(None) == 1
    assert await rows.filter(status="interrupted").aexists()  # never lose a step


def test_a_comparison_takes_one_to_twenty_samples(alice, sara):
    specs = [ContenderSpec("single"), ContenderSpec("nested")]
    with pytest.raises(ValueError, match="samples"):
        create_comparison(alice, sara, SCRIPT, specs, samples=0)
    with pytest.raises(ValueError, match="samples"):
        create_comparison(alice, sara, SCRIPT, specs, samples=21)
    assert create_comparison(alice, sara, SCRIPT, specs, samples=20).samples == 20
