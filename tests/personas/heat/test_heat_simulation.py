"""Three characters after one user message: they talk among themselves, then fall quiet."""

from __future__ import annotations

from heat_cast import CAST

from personaweb.personas.heat import (
    USER,
    Decision,
    HeatBoard,
    HeatConfig,
    ManualClock,
    TurnGuard,
    rank_speakers,
)

# What each character says on its 1st, 2nd, ... turn. They name each other and ask questions,
# the things that keep a conversation going, so it is fatigue that has to end it.
LINES = {
    "ann": [
        "Pasta! @Bob, do you still have that basil?",
        "Bob, you always say that. Cara, what do you think?",
        "Fine, pasta it is.",
    ],
    "bob": [
        "Sure, Ann, plenty of basil. What about dessert?",
        "Cara makes great pie.",
        "Agreed.",
    ],
    "cara_diaz": [
        "I could bake a pie, if anyone wants one?",
        "Apple, then.",
        "Sounds good.",
    ],
}
GAP_S = 6.0  # seconds between messages: typing time, so heat decays a little each turn


def run(
    board: HeatBoard, clock: ManualClock, guard: TurnGuard, lines: dict[str, list[str]]
) -> tuple[list[str], dict[str, Decision]]:
    """One user message, then whoever is hottest speaks, until nobody wants to or the cap."""
    _, decisions = board.say(USER, "Hey everyone, what should we cook tonight?")
    spoken: list[str] = []
    while True:
        checked = {slug: guard.check(d, board.history) for slug, d in decisions.items()}
        speakers = rank_speakers(checked)
        if not speakers:
            return spoken, checked
        who = speakers[0]
        said = sum(1 for s in spoken if s == who)
        clock.advance(GAP_S)
        _, decisions = board.say(who, lines[who][min(said, len(lines[who]) - 1)])
        spoken.append(who)


def test_the_characters_quiet_down_by_themselves_before_the_cap() -> None:
    clock = ManualClock(0.0)
    board = HeatBoard(CAST, clock=clock, overrides={"cara_diaz": HeatConfig(threshold=0.7)})
    guard = TurnGuard(max_turns=8)
    spoken, last = run(board, clock, guard, LINES)

    # A real conversation happened: everyone spoke, some more than once ...
    assert set(spoken) == {"ann", "bob", "cara_diaz"}
    assert len(spoken) > len(CAST)
    # ... and ended by itself: fatigue, not the cap, silenced the last round.
    assert len(spoken) < guard.max_turns
    assert not guard.exhausted(board.history)
    assert all(not d.speak for d in last.values())
    assert all("turn cap" not in d.reason for d in last.values())
    assert all(d.numbers["fatigue"] > 0 for d in last.values())
    # Deterministic: the same clock and script give the same conversation.
    assert spoken == ["ann", "bob", "ann", "cara_diaz", "bob", "cara_diaz"]


def test_it_stays_quiet_afterwards_as_time_passes() -> None:
    clock = ManualClock(0.0)
    board = HeatBoard(CAST, clock=clock)
    run(board, clock, TurnGuard(), LINES)
    clock.advance(120.0)
    # Four half-lives later, everyone has cooled right down.
    assert all(board.heat(m.slug) < 0.1 for m in CAST)


def test_the_cap_stops_characters_who_would_never_tire() -> None:
    # With fatigue switched off and everyone naming everyone, only the cap ends it.
    clock = ManualClock(0.0)
    tireless = HeatConfig(exchange_fatigue=0.0, turn_fatigue=0.0)
    board = HeatBoard(CAST, config=tireless, clock=clock)
    guard = TurnGuard(max_turns=5)
    nag = {m.slug: ["@everyone, what next?"] for m in CAST}
    spoken, last = run(board, clock, guard, nag)
    assert len(spoken) == 5
    assert any(d.reason.startswith("turn cap 5 reached") for d in last.values())
