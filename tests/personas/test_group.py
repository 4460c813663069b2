"""Group chats: the director's decisions, turn order, policies and the chat quieting down."""

from __future__ import annotations

import json
from collections.abc import Callable

from personaweb.llm.scripted import ScriptedChatModel
from personaweb.llm.types import ChatRequest
from personaweb.personas import (
    Action,
    Engine,
    MemoryStore,
    Node,
    NodeKind,
    RunConfig,
    SimpleCharacter,
)
from personaweb.personas.group import BackgroundRatings, GroupSettings, group_hierarchy
from personaweb.personas.heat import PolicySettings, ReplyPolicy, TurnOrder

ANN = SimpleCharacter("Ann Archer", description="A cheerful archer.")
BOB = SimpleCharacter("Bob Baker", description="A grumpy baker.")
CARA = SimpleCharacter("Cara Cole", description="A curious chemist.")
CAST = [("ann", ANN), ("bob", BOB), ("cara", CARA)]


def ticking(step: float = 1.0) -> Callable[[], float]:
    """A clock that moves a fixed step each time it is read: deterministic heat decay."""
    now = [1_000.0]

    def clock() -> float:
        now[0] += step
        return now[0]

    return clock


def by_speaker(replies: dict[str, str]) -> Callable[[ChatRequest], str]:
    """Answer each character's call with its scripted line, whatever the order."""

    def answer(request: ChatRequest) -> str:
        system = request.messages[0].content
        for name, line in replies.items():
            if f"You are {name}" in system:
                return line
        raise AssertionError(f"unexpected call: {system[:80]}")

    return answer


async def full_path(engine: Engine, leaf_id: str) -> list[Node]:
    """The path with every node's call record (a store's path leaves them out)."""
    return [await engine.store.get(n.id) for n in await engine.store.path(leaf_id)]


def engine_for(settings: GroupSettings, model: ScriptedChatModel, strategy: str = "single"):
    root = group_hierarchy(CAST, settings, strategy=strategy)
    return Engine(
        root, MemoryStore(), model, RunConfig(max_steps=400, guided=False), clock=ticking()
    )


async def test_a_three_character_chat_quiets_down_by_itself() -> None:
    model = ScriptedChatModel()
    # Everyone keeps naming the others: only fatigue can end this.
    model.default = by_speaker(
        {
            "Ann Archer": "Bob, what do you think?",
            "Bob Baker": "Cara, bread is better, right?",
            "Cara Cole": "Ann, chemistry wins.",
        }
    )
    engine = engine_for(GroupSettings(turn_cap=20), model)
    leaf = await engine.run_autonomous("Hi everyone, what should we do today?")

    state = await engine.state(leaf.id)
    assert leaf.persona == "director" and leaf.action is Action.PASS
    spoken = [line.speaker for line in state.transcript if line.speaker != "user" and line.text]
    assert len(set(spoken)) >= 2, spoken
    assert len(spoken) < 20  # stopped by fatigue, far below the cap
    # The last decisions are silent ones, each with its reason and numbers.
    last_decisions = [n for n in state.path if n.kind is NodeKind.DECISION][-2:]
    for node in last_decisions:
        assert "stays silent" in node.content
        assert node.data["speak"] is False and "heat" in node.data["numbers"]


async def test_a_group_turn_shows_three_levels() -> None:
    model = ScriptedChatModel()
    decide = json.dumps
    model.route(
        ScriptedChatModel.system_contains("You coordinate"),
        decide({"action": "delegate", "to": "responder", "message": "Answer the user"}),
        decide({"action": "delegate", "to": "style_rewriter", "message": "Hello."}),
        decide({"action": "reply", "to": "caller", "message": "Well met."}),
    )
    model.route(ScriptedChatModel.system_contains("Stay in character"), "Hello.")
    model.route(ScriptedChatModel.system_contains("You rewrite"), "Well met.")
    root = group_hierarchy(
        [("ann", ANN), ("bob", BOB)],
        GroupSettings(order=TurnOrder.MANUAL),
        strategy="nested",
    )
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False), clock=ticking())
    inbound = await engine.send("Ann, hello!", data={"speaker": "ann"})
    leaf = await engine.advance(inbound.id)
    model.assert_complete()
    personas = [n.persona for n in await engine.store.path(leaf.id)]
    assert "director/ann/responder" in personas and "director/ann/style_rewriter" in personas
    state = await engine.state(leaf.id)
    assert [(t.speaker, t.text) for t in state.transcript if t.text] == [
        ("user", "Ann, hello!"),
        ("director/ann", "Well met."),
    ]


async def test_manual_order_lets_only_the_picked_character_speak() -> None:
    model = ScriptedChatModel()
    model.default = by_speaker({"Bob Baker": "Fine, Ann. Fine."})
    engine = engine_for(GroupSettings(order=TurnOrder.MANUAL), model)
    inbound = await engine.send("Ann, Bob, Cara: hello!", data={"speaker": "bob"})
    leaf = await engine.advance(inbound.id)
    state = await engine.state(leaf.id)
    spoken = [t.speaker for t in state.transcript if t.speaker != "user" and t.text]
    assert spoken == ["director/bob"]
    decisions = [n for n in state.path if n.kind is NodeKind.DECISION]
    assert any("the user picked them" in n.content for n in decisions)
    assert any("manual order: the user picks who speaks next" in n.content for n in decisions)


async def test_pooled_order_gives_each_character_at_most_one_turn() -> None:
    model = ScriptedChatModel()
    model.default = by_speaker(
        {
            "Ann Archer": "Bob and Cara, listen!",
            "Bob Baker": "Ann and Cara, no!",
            "Cara Cole": "Ann and Bob, why?",
        }
    )
    engine = engine_for(GroupSettings(order=TurnOrder.POOLED), model)
    leaf = await engine.run_autonomous("Ann, Bob, Cara: who wants cake?")
    state = await engine.state(leaf.id)
    spoken = [t.speaker for t in state.transcript if t.speaker != "user" and t.text]
    assert spoken and len(spoken) == len(set(spoken))


async def test_the_turn_cap_is_the_last_guard() -> None:
    model = ScriptedChatModel()
    model.default = by_speaker(
        {
            "Ann Archer": "Bob! Cara! Answer me!",
            "Bob Baker": "Ann! Cara! Answer me!",
            "Cara Cole": "Ann! Bob! Answer me!",
        }
    )
    engine = engine_for(GroupSettings(turn_cap=2), model)
    leaf = await engine.run_autonomous("Ann, Bob, Cara!")
    state = await engine.state(leaf.id)
    spoken = [t for t in state.transcript if t.speaker != "user" and t.text]
    assert len(spoken) == 2
    assert any("turn cap" in n.content for n in state.path if n.kind is NodeKind.DECISION)


async def test_prepass_decisions_carry_their_calls_and_bad_json_is_silence() -> None:
    model = ScriptedChatModel()
    verdicts = {
        "Ann Archer": json.dumps({"should_respond": True, "reason": "asked", "confidence": 0.9}),
        "Bob Baker": "this is not json",
    }

    def answer(request: ChatRequest) -> str:
        system = request.messages[0].content
        if request.schema is not None:
            return next(v for name, v in verdicts.items() if f"judgement of {name}" in system)
        if "You are Ann Archer" in system:
            return "Happy to help!"
        raise AssertionError(system[:80])

    model.default = answer
    settings = GroupSettings(policy=PolicySettings(default=ReplyPolicy.PREPASS), turn_cap=1)
    root = group_hierarchy([("ann", ANN), ("bob", BOB)], settings, strategy="single")
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False), clock=ticking())
    leaf = await engine.run_autonomous("Can someone help me?")
    state = await engine.state(leaf.id)
    first = [await engine.store.get(n.id) for n in state.path if n.kind is NodeKind.DECISION][:2]
    by_name = {n.data["character"]: n for n in first}
    assert by_name["ann"].data["speak"] is True and by_name["ann"].call is not None
    assert by_name["bob"].data["speak"] is False
    assert "unusable" in by_name["bob"].content
    assert [t.text for t in state.transcript if t.speaker == "director/ann"] == ["Happy to help!"]


async def test_null_action_pass_is_a_visible_silent_choice() -> None:
    model = ScriptedChatModel()
    model.default = by_speaker({"Ann Archer": "[pass]", "Bob Baker": "[pass]"})
    settings = GroupSettings(policy=PolicySettings(default=ReplyPolicy.NULL_ACTION))
    root = group_hierarchy([("ann", ANN), ("bob", BOB)], settings, strategy="single")
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False), clock=ticking())
    leaf = await engine.run_autonomous("Nice weather.")
    path = await engine.store.path(leaf.id)
    passes = [n for n in path if n.persona.startswith("director/") and n.action is Action.PASS]
    assert passes  # the character's own call chose to stay quiet
    assert "reply with exactly [pass]" in model.calls[0].messages[-1].content
    assert leaf.action is Action.PASS and leaf.persona == "director"


async def test_async_ratings_run_in_the_background_and_nudge_later_decisions() -> None:
    model = ScriptedChatModel()
    rating = json.dumps({"interest": 0.0, "boredom": 1.0, "wait_seconds": 100})

    def answer(request: ChatRequest) -> str:
        if request.schema is not None:
            return rating
        return "Sure."

    model.default = answer
    book = BackgroundRatings()
    settings = GroupSettings(policy=PolicySettings(default=ReplyPolicy.ASYNC_RATING), turn_cap=1)
    root = group_hierarchy([("ann", ANN), ("bob", BOB)], settings, strategy="single", ratings=book)
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False), clock=ticking())
    leaf = await engine.run_autonomous("Ann, are you there?")
    await book.settle()
    assert book.results  # rated after the message, off the reply path
    leaf = await engine.run_autonomous("Ann and Bob, still there?", parent_id=leaf.id)
    state = await engine.state(leaf.id)
    later = [n for n in state.path if n.kind is NodeKind.DECISION][-2:]
    assert any("rating_boredom" in n.data["numbers"] for n in later)


async def test_a_landed_rating_is_on_the_path_and_another_process_decides_with_it() -> None:
    from personaweb.personas import export_tree, import_tree

    model = ScriptedChatModel()
    rating = json.dumps({"interest": 0.0, "boredom": 1.0, "wait_seconds": 100})
    model.default = lambda request: rating if request.schema is not None else "Sure."
    settings = GroupSettings(policy=PolicySettings(default=ReplyPolicy.ASYNC_RATING), turn_cap=1)

    def director(ratings: BackgroundRatings) -> Engine:
        root = group_hierarchy(CAST[:2], settings, strategy="single", ratings=ratings)
        return Engine(root, store, model, RunConfig(guided=False), clock=ticking())

    store = MemoryStore()
    book = BackgroundRatings()
    first = director(book)
    leaf = await first.run_autonomous("Ann, are you there?")
    await book.settle()
    leaf = await first.run_autonomous("Ann and Bob, still there?", parent_id=leaf.id)
    opening = (await store.path(leaf.id))[0]
    written = {
        n.data["character"]: n.data["ratings"]
        for n in await store.path(leaf.id)
        if n.kind is NodeKind.DECISION and n.data.get("ratings")
    }
    # The decisions on the second message wrote the ratings of the first that had landed.
    assert set(written) == {"ann", "bob"}
    (ann_rating,) = written["ann"]
    assert ann_rating["heard"] == opening.id
    assert (ann_rating["interest"], ann_rating["boredom"], ann_rating["wait_seconds"]) == (
        0.0,
        1.0,
        100.0,
    )

    async def third_message(nodes: list[Node]) -> dict[str, Node]:
        """The decisions on a third message by another process: its store holds only what
        was saved, and no rating has landed in its memory."""
        nonlocal store
        store = MemoryStore(nodes)
        other = director(BackgroundRatings())
        end = await other.run_autonomous("Anyone?", parent_id=leaf.id)
        path = await store.path(end.id)
        asked = next(n for n in path if n.content == "Anyone?")
        decided = [n for n in path if n.kind is NodeKind.DECISION]
        return {str(n.data["character"]): n for n in decided if n.data["heard"] == asked.id}

    saved = import_tree(export_tree(store.nodes.values()))[0]
    resumed = await third_message(saved)
    for node in saved:
        node.data.pop("ratings", None)
    unrated = await third_message(saved)
    # Read off the path, the rating still cools Ann down and holds her back.
    ann, before = resumed["ann"].data["numbers"], unrated["ann"].data["numbers"]
    assert ann["rating_boredom"] == 1.0 and "rating_boredom" not in before
    assert ann["heat"] < before["heat"]


async def test_policy_costs_are_measured_from_the_nodes() -> None:
    from personaweb.personas.group_metrics import policy_costs

    model = ScriptedChatModel()
    model.default = by_speaker({"Ann Archer": "Hello!", "Bob Baker": "Hi."})
    heuristic = engine_for(GroupSettings(turn_cap=2), model)
    leaf = await heuristic.run_autonomous("Ann, Bob: hello!")
    costs = {c.policy: c for c in policy_costs(await full_path(heuristic, leaf.id))}
    assert costs["heuristic"].llm_calls == 0 and costs["heuristic"].messages >= 1

    model = ScriptedChatModel()
    verdict = json.dumps({"should_respond": False, "reason": "not mine", "confidence": 0.1})
    model.default = lambda request: verdict
    settings = GroupSettings(policy=PolicySettings(default=ReplyPolicy.PREPASS))
    prepass = engine_for(settings, model)
    leaf = await prepass.run_autonomous("Anyone?")
    costs = {c.policy: c for c in policy_costs(await full_path(prepass, leaf.id))}
    assert costs["prepass"].llm_calls == 3 and costs["prepass"].messages == 1
    assert costs["prepass"].tokens > 0 and costs["prepass"].calls_per_message == 3


def test_group_settings_round_trip_and_reject_unknown_policies() -> None:
    import pytest

    from personaweb.personas.group import group_settings_from_dict, group_settings_to_dict

    settings = GroupSettings(
        policy=PolicySettings(ReplyPolicy.PREPASS, {"ann": ReplyPolicy.NULL_ACTION}),
        order=TurnOrder.POOLED,
        turn_cap=3,
    )
    again = group_settings_from_dict(group_settings_to_dict(settings))
    assert again.policy.for_character("ann") is ReplyPolicy.NULL_ACTION
    assert again.policy.for_character("bob") is ReplyPolicy.PREPASS
    assert again.order is TurnOrder.POOLED and again.turn_cap == 3
    with pytest.raises(ValueError, match="group settings"):
        group_settings_from_dict({"policy": "telepathy"})


async def test_natural_order_lets_the_talkative_go_first() -> None:
    model = ScriptedChatModel()
    model.default = by_speaker({"Ann Archer": "Me first.", "Bob Baker": "No, me."})
    root = group_hierarchy(
        [("ann", ANN), ("bob", BOB)],
        GroupSettings(turn_cap=1),
        strategy="single",
        # Ann is listed first and equally hot, but never volunteers; Bob always does.
        talkativeness={"ann": 0.0, "bob": 1.0},
    )
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False), clock=ticking())
    leaf = await engine.run_autonomous("What does everyone think?")
    state = await engine.state(leaf.id)
    spoken = [t.speaker for t in state.transcript if t.speaker != "user" and t.text]
    assert spoken == ["director/bob"]


async def test_a_reviewer_can_reject_or_redirect_the_directors_choice() -> None:
    from personaweb.personas import Mode

    model = ScriptedChatModel()
    model.default = by_speaker({"Ann Archer": "Ann here.", "Bob Baker": "Bob here."})
    root = group_hierarchy([("ann", ANN), ("bob", BOB)], GroupSettings(turn_cap=1))
    engine = Engine(
        root, MemoryStore(), model, RunConfig(mode=Mode.REVIEW, guided=False), clock=ticking()
    )
    first = await engine.advance((await engine.send("Ann and Bob, hello!")).id)
    assert first.persona == "director" and first.action is Action.DELEGATE
    picked = first.target
    other = "bob" if picked == "ann" else "ann"

    # Rejected: the other willing character is chosen, without deciding all over again.
    await engine.reject(first.id)
    second = await engine.advance(first.id)
    assert second.target == other
    decisions = [n for n in await engine.store.path(second.id) if n.kind is NodeKind.DECISION]
    assert len(decisions) == 2

    # Feedback naming a character redirects the turn to them.
    third = await engine.advance((await engine.feedback(second.id, f"let {picked} answer")).id)
    assert third.target == picked and "asked for" in third.data["reason"]


async def test_a_partial_set_of_decisions_is_decided_again_not_trusted() -> None:
    model = ScriptedChatModel()
    model.default = by_speaker({"Bob Baker": "Yes?"})
    engine = engine_for(GroupSettings(turn_cap=1), model)
    leaf = await engine.run_autonomous("Bob, are you there?")
    path = await engine.store.path(leaf.id)
    first_decision = next(n for n in path if n.kind is NodeKind.DECISION)
    assert first_decision.data["index"] == 0 and first_decision.data["of"] == 3

    # As if the process had died after writing the first of the decisions.
    branch = await engine.advance(first_decision.id)
    replay = await engine.store.path(branch.id)
    spoke = [n.target for n in replay if n.persona == "director" and n.action is Action.DELEGATE]
    assert spoke == ["bob"]


def test_a_newcomer_hears_the_latest_lines_not_the_whole_conversation() -> None:
    """A character that has not spoken yet is told what was said lately, not all of it: a
    long conversation in one message would outgrow a small model's window."""
    from personaweb.personas.group.conversation import Heard
    from personaweb.personas.group.prompts import HEARD_CHARS, turn_message
    from personaweb.personas.heat.chat import USER, GroupMessage, Member

    members = [Member("ann", "Ann Archer"), Member("bob", "Bob Baker")]
    said = [
        GroupMessage(USER if i % 2 else "bob", f"line {i} " + "x" * 300, float(i))
        for i in range(40)
    ]
    heard = Heard(said, [f"n{i}" for i in range(40)], None)
    text = turn_message("ann", heard, members, can_pass=False)
    quoted = [i for i in range(40) if f"line {i} " in text]
    assert quoted == list(range(40 - len(quoted), 40))  # the newest, in order
    assert 1 < len(quoted) < 40 and sum(len(said[i].text) for i in quoted) <= HEARD_CHARS
    assert f"({40 - len(quoted)} earlier lines not shown)" in text
    # A short conversation is quoted whole, and the newest line always is, however long.
    assert "not shown" not in turn_message(
        "ann", Heard(said[-3:], ["a", "b", "c"], None), members, can_pass=False
    )
    huge = [GroupMessage(USER, "y" * (3 * HEARD_CHARS), 1.0)]
    assert "y" * (3 * HEARD_CHARS) in turn_message(
        "ann", Heard(huge, ["a"], None), members, can_pass=False
    )
