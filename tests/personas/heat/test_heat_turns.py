"""Turn order (natural, list, pooled, manual) and the hard cap on turns."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from heat_cast import CAST, chat

from personaweb.personas.heat import (
    DEFAULT_TURN_CAP,
    USER,
    Decision,
    Member,
    ReplyPolicy,
    TurnGuard,
    TurnOrder,
    natural_draft,
    speaking_order,
)

SHY = Member("shy", "Sam Shy", talkativeness=0.0)
CHATTY = Member("chatty", "Cat Chatty", talkativeness=1.0)
MUTE = Member("mute", "Max Mute", talkativeness=0.0)


def wants(slug: str, heat: float = 0.9) -> Decision:
    return Decision(slug, True, ReplyPolicy.HEURISTIC, "hot", {"heat": heat, "threshold": 0.6})


def quiet(slug: str) -> Decision:
    return Decision(slug, False, ReplyPolicy.HEURISTIC, "cold", {"heat": 0.1, "threshold": 0.6})


# -- the natural draft --------------------------------------------------------------------


def test_natural_puts_mentioned_characters_first() -> None:
    cast = [CHATTY, SHY, MUTE]
    history = chat((USER, "Max and Sam, what do you say?"))
    drafted = natural_draft(cast, history, rng=random.Random(1))
    # Mentioned ones in member order, then the talkativeness round (Cat always talks).
    assert drafted == ["shy", "mute", "chatty"]


def test_natural_drafts_by_talkativeness() -> None:
    cast = [CHATTY, SHY, MUTE]
    assert natural_draft(cast, chat((USER, "hello")), rng=random.Random(7)) == ["chatty"]


def test_natural_talkativeness_is_a_probability() -> None:
    rng = random.Random(2024)
    counts: Counter[str] = Counter()
    for _ in range(2000):
        counts.update(natural_draft(CAST, chat((USER, "hello")), rng=rng))
    # Ann 0.8, Bob 0.5, Cara 0.2 (plus the odd random pick when no one is drafted).
    assert counts["ann"] > counts["bob"] > counts["cara_diaz"]
    assert 1500 < counts["ann"] < 1750
    assert 900 < counts["bob"] < 1150


def test_natural_picks_someone_at_random_when_no_one_is_drafted() -> None:
    cast = [SHY, MUTE]
    picks = {
        tuple(natural_draft(cast, chat((USER, "hm")), rng=random.Random(s))) for s in range(20)
    }
    assert picks == {("shy",), ("mute",)}


def test_natural_never_drafts_the_last_speaker() -> None:
    cast = [CHATTY, SHY]
    history = chat(("chatty", "I, Cat, say so myself."))
    assert natural_draft(cast, history, rng=random.Random(0)) == ["shy"]


def test_natural_is_reproducible_with_a_seed() -> None:
    history = chat((USER, "hello"))
    runs = [natural_draft(CAST, history, rng=random.Random(42)) for _ in "ab"]
    assert runs[0] == runs[1]


# -- who of those who want to speak goes first ---------------------------------------------


def test_natural_order_takes_the_draft_first_then_the_hottest() -> None:
    cast = [CHATTY, SHY, MUTE]
    history = chat((USER, "Sam?"))
    decisions = [wants("chatty"), wants("mute", heat=0.7), wants("shy", heat=0.61), quiet("x")]
    # Sam is mentioned and Cat always talks; Max, not drafted, comes after them.
    order = speaking_order(TurnOrder.NATURAL, cast, history, decisions, rng=random.Random(3))
    assert order == ["shy", "chatty", "mute"]


def test_natural_order_skips_the_drafted_who_do_not_want_to_speak() -> None:
    cast = [CHATTY, SHY, MUTE]
    decisions = [quiet("chatty"), wants("shy", heat=0.7), wants("mute", heat=0.8)]
    order = speaking_order(
        TurnOrder.NATURAL, cast, chat((USER, "hello")), decisions, rng=random.Random(7)
    )
    assert order == ["mute", "shy"]  # Cat was drafted but is cold: the hottest go


def test_list_order_is_member_order_among_those_who_want_to() -> None:
    decisions = [wants("cara_diaz"), quiet("bob"), wants("ann", heat=0.7)]
    assert speaking_order(TurnOrder.LIST, CAST, chat(("bob", "hi")), decisions) == [
        "ann",
        "cara_diaz",
    ]


def test_pooled_takes_the_hottest_who_has_not_spoken_since_the_user() -> None:
    history = chat(("cara_diaz", "earlier"), (USER, "so?"), ("ann", "a"), ("bob", "b"))
    decisions = [wants("ann", heat=1.5), wants("cara_diaz", heat=0.7)]
    assert speaking_order(TurnOrder.POOLED, CAST, history, decisions) == ["cara_diaz"]


def test_pooled_is_nobody_once_everyone_had_a_turn() -> None:
    history = chat((USER, "so?"), ("ann", "a"), ("bob", "b"), ("cara_diaz", "c"))
    assert speaking_order(TurnOrder.POOLED, CAST, history, [wants("ann"), wants("bob")]) == []


def test_manual_is_whoever_the_decisions_let_speak() -> None:
    # In manual order only the user's pick wants to speak (the director decides so).
    history = chat((USER, "hi"))
    decisions = [quiet("ann"), wants("bob"), quiet("cara_diaz")]
    assert speaking_order(TurnOrder.MANUAL, CAST, history, decisions) == ["bob"]


def test_no_members_no_speakers() -> None:
    for order in TurnOrder:
        assert speaking_order(order, [], chat((USER, "hi")), [], rng=random.Random(0)) == []
    assert natural_draft([], chat((USER, "hi")), rng=random.Random(0)) == []


# -- the hard cap -------------------------------------------------------------------------


def test_the_guard_counts_character_turns_since_the_user() -> None:
    guard = TurnGuard(max_turns=3)
    history = chat(("ann", "x"), (USER, "hi"), ("ann", "a"), ("bob", "b"))
    assert guard.turns(history) == 2
    assert guard.remaining(history) == 1
    assert not guard.exhausted(history)
    assert guard.limit(["cara_diaz", "ann"], history) == ["cara_diaz"]
    history += chat(("cara_diaz", "c"), start=100.0)
    assert guard.exhausted(history)
    assert guard.limit(["ann"], history) == []
    # The user speaking again starts a fresh count.
    assert not guard.exhausted([*history, *chat((USER, "more?"), start=200.0)])


def test_the_guard_silences_a_decision_and_keeps_its_story() -> None:
    guard = TurnGuard(max_turns=1)
    history = chat((USER, "hi"), ("bob", "b"))
    wants = Decision("ann", True, ReplyPolicy.HEURISTIC, "heat 0.90 ≥ 0.60", {"heat": 0.9})
    checked = guard.check(wants, history)
    assert not checked.speak
    assert checked.reason == (
        "turn cap 1 reached since the user's last message (was: heat 0.90 ≥ 0.60)"
    )
    assert checked.numbers == {"heat": 0.9, "turns": 1.0, "max_turns": 1.0}
    # Under the cap, or already silent: untouched.
    assert guard.check(wants, history[:1]) is wants
    quiet = Decision("ann", False, ReplyPolicy.HEURISTIC, "cold", {})
    assert guard.check(quiet, history) is quiet


def test_the_guard_defaults_to_the_group_turn_cap() -> None:
    assert TurnGuard().max_turns == DEFAULT_TURN_CAP


def test_the_guard_needs_at_least_one_turn() -> None:
    with pytest.raises(ValueError):
        TurnGuard(max_turns=0)
