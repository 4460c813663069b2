"""Heuristic heat: decay, boosts, fatigue, threshold crossing, and the board."""

from __future__ import annotations

import math

import pytest
from heat_cast import ANN, BOB, CAST, chat

from personaweb.personas.heat import (
    USER,
    Boosts,
    GroupMessage,
    HeatBoard,
    HeatConfig,
    HeatState,
    ManualClock,
    Member,
    ReplyPolicy,
    after_speaking,
    compute_boosts,
    decayed,
    hear,
    heat_at,
    heuristic_fatigue,
)


def boosts_of(
    text: str, speaker: str = "bob", config: HeatConfig | None = None, who: str = "ann"
) -> Boosts:
    # Each test reads one named cause, so the others need not be switched off.
    return compute_boosts(GroupMessage(speaker, text, 0.0), who, CAST, config or HeatConfig())


# -- decay --------------------------------------------------------------------------------


def test_heat_halves_every_half_life() -> None:
    assert decayed(0.8, 30.0, 30.0) == pytest.approx(0.4)
    assert decayed(0.8, 60.0, 30.0) == pytest.approx(0.2)
    assert decayed(0.8, 15.0, 30.0) == pytest.approx(0.8 / math.sqrt(2))
    assert decayed(0.8, 10.0, 5.0) == pytest.approx(0.2)


def test_no_time_no_decay_and_time_never_runs_backwards() -> None:
    assert decayed(0.7, 0.0, 30.0) == 0.7
    # A message stamped slightly before the state (clock skew) must not warm anyone up.
    assert decayed(0.7, -5.0, 30.0) == 0.7


def test_heat_at_uses_the_states_own_time() -> None:
    state = HeatState(heat=1.0, at=1000.0)
    assert heat_at(state, 1030.0, HeatConfig()) == pytest.approx(0.5)
    assert heat_at(state, 1030.0, HeatConfig(half_life_s=10.0)) == pytest.approx(0.125)


def test_the_board_decays_by_its_injected_clock(clock: ManualClock, members: list[Member]) -> None:
    board = HeatBoard(members, clock=clock)
    board.set_state("ann", HeatState(heat=0.9, at=clock()))
    clock.advance(30.0)
    assert board.heat("ann") == pytest.approx(0.45)
    clock.advance(30.0)
    assert board.heat("ann") == pytest.approx(0.225)


def test_config_rejects_nonsense() -> None:
    with pytest.raises(ValueError):
        HeatConfig(half_life_s=0)
    with pytest.raises(ValueError):
        HeatConfig(mention_boost=-1)
    with pytest.raises(ValueError):
        HeatConfig(retain_after_speaking=2)


# -- boosts -------------------------------------------------------------------------------


def test_every_message_bumps_heat() -> None:
    assert boosts_of("ok").message == 0.2


def test_the_user_gets_more_attention_than_other_characters() -> None:
    assert boosts_of("ok", speaker=USER).from_user == 0.2
    assert boosts_of("ok", speaker="bob").from_user == 0.0


def test_being_named_boosts_and_others_being_named_cools() -> None:
    assert boosts_of("Ann, salt please").mention == 0.6
    assert boosts_of("@ann salt please").mention == 0.6
    named_elsewhere = boosts_of("Cara, salt please")
    assert named_elsewhere.mention == 0.0
    assert named_elsewhere.elsewhere == -0.15
    # Nobody named: nobody is cooled.
    assert boosts_of("salt please").elsewhere == 0.0


def test_a_question_to_the_group_boosts_but_a_question_to_someone_else_does_not() -> None:
    assert boosts_of("What should we cook?").group_question == 0.35
    assert boosts_of("Cara, what should we cook?").group_question == 0.0


def test_length_boost_grows_and_is_capped() -> None:
    assert boosts_of("x" * 100).length == pytest.approx(0.05)
    assert boosts_of("x" * 200).length == pytest.approx(0.10)
    assert boosts_of("x" * 5000).length == pytest.approx(0.15)


def test_media_and_links_boost() -> None:
    assert boosts_of("[image]").media == 0.1
    assert boosts_of("see https://example.com").link == 0.1
    both = boosts_of("https://example.com/a.jpg")
    assert (both.media, both.link) == (0.1, 0.1)


def test_boost_numbers_add_up() -> None:
    boosts = boosts_of("Ann? https://example.com/a.jpg", speaker=USER)
    numbers = boosts.as_numbers()
    assert numbers["boost"] == pytest.approx(0.2 + 0.2 + 0.6 + 0.1 + 0.1 + numbers["boost_length"])


# -- fatigue ------------------------------------------------------------------------------


def test_fatigue_grows_with_back_and_forth_and_own_turns() -> None:
    config = HeatConfig()
    history = chat((USER, "hi"), ("bob", "hey"))
    assert heuristic_fatigue(history, "ann", config).value == 0.0

    history = chat((USER, "hi"), ("bob", "hey"), ("ann", "yo"), ("bob", "so?"))
    once = heuristic_fatigue(history, "ann", config)
    assert (once.exchanges, once.own_turns) == (1, 1)
    assert once.value == pytest.approx(0.1 + 0.15)

    history += chat(("ann", "so."), ("bob", "and?"), start=20.0)
    twice = heuristic_fatigue(history, "ann", config)
    assert (twice.exchanges, twice.own_turns) == (2, 2)
    assert twice.value == pytest.approx(0.2 + 0.3)


def test_the_user_speaking_again_clears_turn_fatigue() -> None:
    history = chat((USER, "hi"), ("ann", "a"), ("bob", "b"), ("ann", "c"), (USER, "and now?"))
    fatigue = heuristic_fatigue(history, "ann", HeatConfig())
    assert fatigue.own_turns == 0
    # Back-and-forth with the user still counts: ann answered "hi" once.
    assert fatigue.exchanges == 1


def test_back_and_forth_only_counts_the_recent_window() -> None:
    # ann answered bob long ago; six messages later that no longer tires her.
    history = chat(
        ("bob", "1"),
        ("ann", "2"),
        (USER, "3"),
        ("cara_diaz", "4"),
        (USER, "5"),
        (USER, "6"),
        (USER, "7"),
        ("bob", "8"),
    )
    assert heuristic_fatigue(history, "ann", HeatConfig()).exchanges == 0


def test_fatigue_eats_the_boost_but_not_the_heat_already_there() -> None:
    tired = chat((USER, "hi"), ("ann", "a"), ("bob", "b"), ("ann", "c"), ("bob", "d"))
    state = HeatState(heat=0.3, at=tired[-1].timestamp)
    new_state, decision = hear(state, tired, "ann", CAST)
    # boost 0.2 (+ tiny length) minus fatigue 0.2 + 0.3: the gain is floored at zero.
    assert decision.numbers["gain"] == 0.0
    assert new_state.heat == pytest.approx(0.3)


# -- threshold crossing -------------------------------------------------------------------


def test_it_stays_quiet_below_the_threshold_and_says_why() -> None:
    history = chat((USER, "nice weather"))
    _, decision = hear(HeatState(at=0.0), history, "ann", CAST)
    assert not decision.speak
    assert decision.policy is ReplyPolicy.HEURISTIC
    # 0.2 heard + 0.2 from the user + 12 characters of length.
    assert decision.reason == "heat 0.41 below 0.60, not mentioned"
    assert decision.numbers["threshold"] == 0.6


def test_heat_builds_up_over_several_messages_until_it_crosses() -> None:
    config = HeatConfig(half_life_s=1e9)  # no decay, to isolate accumulation
    state = HeatState(at=0.0)
    history: list[GroupMessage] = []
    spoke_at = None
    for i in range(5):
        history.append(GroupMessage("bob", "hmm", float(i)))
        state, decision = hear(state, history, "ann", CAST, config)
        if decision.speak:
            spoke_at = i
            break
    # 0.2 per message: 0.2, 0.4, 0.6 -> crosses on the third.
    assert spoke_at == 2
    assert decision.reason.startswith("heat 0.60 ≥ 0.60")


def test_a_mention_pushes_it_over_and_the_reason_names_the_speaker() -> None:
    history = chat((USER, "@ann what's for dinner"))
    _, decision = hear(HeatState(at=0.0), history, "ann", CAST)
    assert decision.speak
    assert decision.reason.startswith("mentioned by @user: heat 1.")
    assert decision.reason.endswith("≥ 0.60")
    assert decision.numbers["mentioned"] == 1.0


def test_exactly_at_the_threshold_speaks() -> None:
    config = HeatConfig(threshold=0.4, length_boost_per_100_chars=0.0)
    _, decision = hear(HeatState(at=0.0), chat((USER, "hello")), "ann", CAST, config)
    assert decision.numbers["heat"] == pytest.approx(0.4)
    assert decision.speak


def test_decay_between_messages_can_keep_it_under() -> None:
    config = HeatConfig(half_life_s=10.0, length_boost_per_100_chars=0.0)
    slow = chat((USER, "a"), (USER, "b"), gap=10.0)
    state, _ = hear(HeatState(at=0.0), slow[:1], "ann", CAST, config)
    _, decision = hear(state, slow, "ann", CAST, config)
    # 0.4 halves to 0.2 in ten seconds, plus 0.4: 0.6 exactly.
    assert decision.numbers["heat_before"] == pytest.approx(0.2)
    assert decision.numbers["heat"] == pytest.approx(0.6)
    slower = chat((USER, "a"), (USER, "b"), gap=20.0)
    state, _ = hear(HeatState(at=0.0), slower[:1], "ann", CAST, config)
    _, decision = hear(state, slower, "ann", CAST, config)
    assert decision.numbers["heat"] == pytest.approx(0.5)
    assert not decision.speak


def test_heat_is_capped() -> None:
    history = chat(*[(USER, "@ann @ann!! https://x.example/a.png")] * 10, gap=0.0)
    state = HeatState()
    for i in range(1, len(history) + 1):
        state, _ = hear(state, history[:i], "ann", CAST)
    assert state.heat == HeatConfig().max_heat


def test_speaking_lowers_heat() -> None:
    state = after_speaking(HeatState(heat=1.2, at=0.0, quiet_until=50.0), 0.0)
    assert state.heat == pytest.approx(0.3)
    assert state.quiet_until == 0.0


def test_a_character_does_not_hear_itself() -> None:
    with pytest.raises(ValueError):
        hear(HeatState(), chat(("ann", "hi")), "ann", CAST)


def test_a_rating_wait_holds_it_back_unless_it_is_mentioned() -> None:
    state = HeatState(heat=0.5, at=0.0, quiet_until=30.0)
    _, decision = hear(state, chat(("bob", "What do we do now?")), "ann", CAST)
    assert not decision.speak
    assert decision.reason.startswith("holding back 30 s more after a rating: question to the")
    _, decision = hear(state, chat(("bob", "Ann, what now?")), "ann", CAST)
    assert decision.speak


# -- the board ----------------------------------------------------------------------------


def test_the_board_decides_for_everyone_but_the_speaker(
    clock: ManualClock, members: list[Member]
) -> None:
    board = HeatBoard(members, clock=clock)
    _, decisions = board.say("ann", "Bob, you there?")
    assert set(decisions) == {"bob", "cara_diaz"}
    assert decisions["bob"].speak
    assert not decisions["cara_diaz"].speak


def test_per_character_overrides(clock: ManualClock, members: list[Member]) -> None:
    board = HeatBoard(members, clock=clock, overrides={"bob": HeatConfig(threshold=0.3)})
    _, decisions = board.say(USER, "nice weather")
    assert decisions["bob"].speak
    assert not decisions["ann"].speak
    assert decisions["bob"].numbers["threshold"] == 0.3


def test_the_board_cools_the_speaker(clock: ManualClock, members: list[Member]) -> None:
    board = HeatBoard(members, clock=clock)
    board.say(USER, "@ann hi")
    hot = board.heat("ann")
    board.say("ann", "hello!")
    assert board.heat("ann") == pytest.approx(hot * 0.25)


def test_replaying_the_history_gives_the_same_heat(
    clock: ManualClock, members: list[Member]
) -> None:
    live = HeatBoard(members, clock=clock)
    for speaker, text in [(USER, "hi all?"), ("ann", "hey Bob"), ("bob", "yo"), (USER, "ok")]:
        clock.advance(7.0)
        live.say(speaker, text)
    rebuilt = HeatBoard.replay(members, live.history, clock=clock)
    for member in members:
        assert rebuilt.heat(member.slug) == pytest.approx(live.heat(member.slug))


def test_the_board_refuses_unknown_speakers(clock: ManualClock, members: list[Member]) -> None:
    with pytest.raises(KeyError):
        HeatBoard(members, clock=clock).say("dave", "hi")


def test_decisions_round_trip_through_dicts(clock: ManualClock) -> None:
    from personaweb.personas.heat import Decision

    board = HeatBoard([ANN, BOB], clock=clock)
    _, decisions = board.say(USER, "Ann?")
    decision = decisions["ann"]
    assert Decision.from_dict(decision.to_dict()) == decision
