"""Async heat updates: the rating schema, prompt, application, and the background call."""

from __future__ import annotations

import pytest
from heat_cast import BOB, CAST, chat

from personaweb.llm.calls import NO_RETRY
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.llm.types import LLMProfile, LLMUnavailable
from personaweb.personas.heat import (
    RATING_SCHEMA,
    USER,
    HeatBoard,
    HeatConfig,
    HeatRating,
    HeatState,
    ManualClock,
    apply_rating,
    build_rating_messages,
    parse_rating,
    run_rating,
)

PROFILE = LLMProfile(model="tiny", temperature=0.0)


def test_interest_warms_and_boredom_cools() -> None:
    state = HeatState(heat=0.4, at=0.0)
    warmer = apply_rating(state, HeatRating(interest=1.0, boredom=0.0, wait_seconds=0.0), 0.0)
    assert warmer.heat == pytest.approx(0.4 + 0.3)
    cooler = apply_rating(state, HeatRating(interest=0.0, boredom=1.0, wait_seconds=0.0), 0.0)
    assert cooler.heat == pytest.approx(0.0)  # floored, never negative
    mixed = apply_rating(state, HeatRating(interest=0.5, boredom=0.25, wait_seconds=0.0), 0.0)
    assert mixed.heat == pytest.approx(0.4 + 0.15 - 0.1)


def test_a_late_rating_applies_to_the_decayed_heat() -> None:
    # The rating lands 30 s after the heat was set: half of it is gone by then.
    state = HeatState(heat=0.8, at=0.0)
    after = apply_rating(state, HeatRating(0.0, 0.0, 0.0), 30.0)
    assert after.heat == pytest.approx(0.4)
    assert after.at == 30.0


def test_the_wait_starts_when_the_rating_lands_and_is_capped() -> None:
    state = HeatState(heat=0.4, at=0.0, quiet_until=500.0)
    after = apply_rating(state, HeatRating(0.5, 0.0, 12.0), 100.0)
    assert after.quiet_until == 112.0  # the latest rating replaces the earlier wait
    capped = apply_rating(state, HeatRating(0.5, 0.0, 1e9), 100.0, HeatConfig(max_wait_s=60))
    assert capped.quiet_until == 160.0


def test_a_rating_wait_silences_a_hot_character_on_the_board() -> None:
    clock = ManualClock(0.0)
    board = HeatBoard(CAST, clock=clock)
    board.set_state("bob", apply_rating(board.states["bob"], HeatRating(1.0, 0.0, 20.0), 0.0))
    clock.advance(5.0)
    _, decisions = board.say(USER, "What should we cook?")
    assert not decisions["bob"].speak
    assert decisions["bob"].reason.startswith("holding back 15 s more")
    clock.advance(20.0)
    _, decisions = board.say(USER, "Hello? What should we cook?")
    assert decisions["bob"].speak


@pytest.mark.parametrize(
    "value",
    [
        {"interest": 1.2, "boredom": 0, "wait_seconds": 0},
        {"interest": 0.5, "boredom": -0.1, "wait_seconds": 0},
        {"interest": 0.5, "boredom": 0.1, "wait_seconds": -3},
        {"interest": 0.5, "boredom": 0.1},
        {"interest": True, "boredom": 0.1, "wait_seconds": 0},
        "0.5",
    ],
)
def test_parse_rating_rejects_bad_values(value: object) -> None:
    with pytest.raises(ValueError):
        parse_rating(value)


def test_parse_rating_accepts_integers() -> None:
    assert parse_rating({"interest": 1, "boredom": 0, "wait_seconds": 5}) == HeatRating(1, 0, 5)


def test_the_rating_prompt_quotes_recent_history_and_the_persona() -> None:
    history = chat(*[(USER, f"m{i}") for i in range(7)])
    system, user = (m.content for m in build_rating_messages(BOB, history, CAST))
    assert '"wait_seconds"' in system and "Bob Stone" in system
    assert "Persona: A gardener." in user
    assert "- User: m6" in user and "- User: m2" in user and "m1" not in user


async def test_run_rating_returns_a_checked_rating() -> None:
    model = ScriptedChatModel('{"interest": 0.7, "boredom": 0.1, "wait_seconds": 4}')
    result = await run_rating(model, PROFILE, BOB, chat((USER, "hi")), CAST)
    model.assert_complete()
    assert result.rating == HeatRating(0.7, 0.1, 4.0)
    assert result.error == ""
    assert model.calls[0].schema == RATING_SCHEMA
    assert result.record is not None


async def test_a_lost_rating_is_reported_not_raised() -> None:
    model = ScriptedChatModel("not json at all", LLMUnavailable("down"))
    bad = await run_rating(model, PROFILE, BOB, chat((USER, "hi")), CAST)
    assert bad.rating is None
    assert bad.error.startswith("rating answer unusable: invalid JSON")
    assert bad.record is not None and bad.record.response_text == "not json at all"
    down = await run_rating(model, PROFILE, BOB, chat((USER, "hi")), CAST, retry=NO_RETRY)
    assert down.rating is None
    assert down.error == "rating call failed: LLMUnavailable: down"
    assert down.record is not None and down.record.response_text == ""
