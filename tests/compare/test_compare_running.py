"""Creating and running comparisons: sessions per contender, concurrent runs, metrics."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from personaweb.compare import metrics, running
from personaweb.compare.models import Comparison
from personaweb.compare.setup import ContenderSpec, create_comparison

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
    for _ in range(200):
        if await NodeRow.objects.filter(session_id=nested.session_id, status="streaming").aexists():
            break
        await asyncio.sleep(0.02)
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
