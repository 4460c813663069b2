"""Turn order (natural, list, pooled, manual) and the hard cap on turns."""

from __future__ import annotations

import random
from collections import Counter

import pytest
from heat_cast import CAST, chat

from personaweb.personas.heat import (
    USER,
    Decision,
    Member,
    ReplyPolicy,
    TurnGuard,
    TurnOrder,
    next_speakers,
)

SHY = Member("shy", "Sam Shy", talkativeness=0.0)
CHATTY = Member("chatty", "Cat Chatty", talkativeness=1.0)
MUTE = Member("mute", "Max Mute", talkativeness=0.0)


# -- natural ------------------------------------------------------------------------------


def test_natural_puts_mentioned_characters_first() -> None:
    cast = [CHATTY, SHY, MUTE]
    history = chat((USER, "Max and Sam, what do you say?"))
    drafted = next_speakers(TurnOrder.NATURAL, cast, history, rng=random.Random(1))
    # Mentioned ones in member order, then the talkativeness round (Cat always talks).
    assert drafted == ["shy", "mute", "chatty"]


def test_natural_drafts_by_talkativeness() -> None:
    cast = [CHATTY, SHY, MUTE]
    drafted = next_speakers(TurnOrder.NATURAL, cast, chat((USER, "hello")), rng=random.Random(7))
    assert drafted == ["chatty"]


def test_natural_talkativeness_is_a_probability() -> None:
    rng = random.Random(2024)
    counts: Counter[str] = Counter()
    for _ in range(2000):
        counts.update(next_speakers(TurnOrder.NATURAL, CAST, chat((USER, "hello")), rng=rng))
    # Ann 0.8, Bob 0.5, Cara 0.2 (plus the odd random pick when no one is drafted).
    assert counts["ann"] > counts["bob"] > counts["cara_diaz"]
    assert 1500 < counts["ann"] < 1750
    assert 900 < counts["bob"] < 1150


def test_natural_picks_someone_at_random_when_no_one_is_drafted() -> None:
    cast = [SHY, MUTE]
    picks = {
        tuple(next_speakers(TurnOrder.NATURAL, cast, chat((USER, "hm")), rng=random.Random(s)))
        for s in range(20)
    }
    assert picks == {("shy",), ("mute",)}


def test_natural_never_drafts_the_last_speaker_unless_allowed() -> None:
    cast = [CHATTY, SHY]
    history = chat(("chatty", "I, Cat, say so myself."))
    assert next_speakers(TurnOrder.NATURAL, cast, history, rng=random.Random(0)) == ["shy"]
    assert "chatty" in next_speakers(
        TurnOrder.NATURAL, cast, history, rng=random.Random(0), allow_self_responses=True
    )


def test_natural_is_reproducible_with_a_seed() -> None:
    history = chat((USER, "hello"))
    runs = [next_speakers(TurnOrder.NATURAL, CAST, history, rng=random.Random(42)) for _ in "ab"]
    assert runs[0] == runs[1]


# -- list, pooled, manual -----------------------------------------------------------------


def test_list_order_is_every_character_in_member_order() -> None:
    assert next_speakers(TurnOrder.LIST, CAST, chat(("ann", "hi"))) == ["ann", "bob", "cara_diaz"]


def test_pooled_picks_someone_who_has_not_spoken_since_the_user() -> None:
    history = chat(("cara_diaz", "earlier"), (USER, "so?"), ("ann", "a"), ("bob", "b"))
    for seed in range(10):
        assert next_speakers(TurnOrder.POOLED, CAST, history, rng=random.Random(seed)) == [
            "cara_diaz"
        ]


def test_pooled_falls_back_to_anyone_but_the_last_speaker() -> None:
    history = chat((USER, "so?"), ("ann", "a"), ("bob", "b"), ("cara_diaz", "c"))
    picks = {
        next_speakers(TurnOrder.POOLED, CAST, history, rng=random.Random(s))[0] for s in range(30)
    }
    assert picks == {"ann", "bob"}


def test_manual_is_whoever_the_user_picks() -> None:
    history = chat((USER, "hi"))
    assert next_speakers(TurnOrder.MANUAL, CAST, history, chosen="bob") == ["bob"]
    assert next_speakers(TurnOrder.MANUAL, CAST, history, chosen="dave") == []
    assert next_speakers(TurnOrder.MANUAL, CAST, history) == []


def test_no_members_no_speakers() -> None:
    for order in TurnOrder:
        assert next_speakers(order, [], chat((USER, "hi")), rng=random.Random(0)) == []


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


def test_the_guard_needs_at_least_one_turn() -> None:
    with pytest.raises(ValueError):
        TurnGuard(max_turns=0)
