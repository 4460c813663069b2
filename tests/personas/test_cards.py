"""A character card means what its author meant, in every strategy and in group chats: the
greeting opens the session, the card's prompt fields land where the V2 spec puts them, no
macro reaches a prompt, and the lorebook fires on its keys within budget."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

import pytest

from personaweb.characters.cards import sheet_from_card
from personaweb.characters.macros import DEFAULT_USER
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.llm.types import ChatRequest
from personaweb.personas import Engine, MemoryStore, Node, RunConfig, dialogue_hierarchy
from personaweb.personas.dialogue import SimpleCharacter, chat_character
from personaweb.personas.greetings import Opening, greeting_nodes
from personaweb.personas.group import GroupSettings, group_hierarchy
from personaweb.personas.heat import TurnOrder
from personaweb.personas.state import NextKind
from personaweb.personas.tree import NodeKind
from tests.cardkit import community_card, v3_card

GREETING = "*Mira rolls up a chart.* You're the new hand, Joe? Don't touch that."
MACRO = re.compile(r"\{\{\s*(char|user|original)\s*\}\}|<(bot|user|char)>", re.IGNORECASE)


def mira(user: str = "Joe", **card: object) -> SimpleCharacter:
    sheet = sheet_from_card(community_card(**card))
    return chat_character(sheet.to_dict(), user=user)


def plays_every_persona(request: ChatRequest) -> str:
    """Answers each persona of the three strategies, routed by its system prompt."""
    system = request.messages[0].content
    last = next(m.content for m in reversed(request.messages) if m.role == "user")
    if system.startswith("You produce"):
        steps = [("delegate", "responder"), ("delegate", "style_rewriter"), ("reply", "caller")]
        turn = max(i for i, m in enumerate(request.messages) if m.content.startswith("Message"))
        done = sum(1 for m in request.messages[turn:] if m.role == "assistant")
        action, to = steps[done]
        return json.dumps({"action": action, "to": to, "message": last.partition(": ")[2]})
    if system.startswith("You rewrite"):
        return f"[styled] {last}"
    if system.startswith("You judge whether"):
        return json.dumps({"score": 0.9, "drifting": False, "hint": ""})
    return "Charts first."


async def opened(root_path: str, text: str = GREETING) -> tuple[MemoryStore, Node]:
    store = MemoryStore()
    [greeting] = greeting_nodes([Opening(root_path, text, "greeting")])
    await store.add(greeting)
    return store, greeting


def calls_of(model: ScriptedChatModel, start: str) -> list[ChatRequest]:
    return [c for c in model.calls if c.messages[0].content.startswith(start)]


# --- greetings --------------------------------------------------------------------------------


async def test_a_greeting_opens_the_session_and_the_next_reply_follows_it() -> None:
    root = dialogue_hierarchy(mira(), strategy="single")
    store, greeting = await opened(root.path)
    model = ScriptedChatModel("Charts first.")
    engine = Engine(root, store, model, RunConfig(guided=False))

    state = await engine.state(greeting.id)
    assert state.next.kind is NextKind.DONE  # the person's turn: the character has spoken
    assert [(line.speaker, line.text) for line in state.transcript] == [("character", GREETING)]

    leaf = await engine.run_autonomous("Who are you?", parent_id=greeting.id)
    sent = model.calls[0].messages
    assert [(m.role, m.content) for m in sent[1:3]] == [
        ("assistant", GREETING),
        ("user", "Who are you?"),
    ]
    transcript = (await engine.state(leaf.id)).transcript
    assert [line.text for line in transcript] == [GREETING, "Who are you?", "Charts first."]


@pytest.mark.parametrize("strategy", ["nested", "linear"])
async def test_the_in_character_responder_has_the_greeting_as_its_own_first_line(
    strategy: str,
) -> None:
    root = dialogue_hierarchy(mira(), strategy=strategy)
    store, greeting = await opened(root.path)
    model = ScriptedChatModel()
    model.default = plays_every_persona
    engine = Engine(root, store, model, RunConfig(guided=False))
    leaf = await engine.run_autonomous("Who are you?", parent_id=greeting.id)
    assert leaf.persona == root.path and leaf.content == "[styled] Charts first."

    [responder] = calls_of(model, "You are Mira Vance")
    assert [(m.role, m.content) for m in responder.messages[1:3]] == [
        ("assistant", GREETING),
        ("user", "Who are you?"),
    ]
    # The stateless rewriter sees only the line it rewrites.
    [rewriter] = calls_of(model, "You rewrite")
    assert [m.content for m in rewriter.messages[1:]] == ["Charts first."]
    if strategy == "linear":
        # The greeting is the character's line: the goal check counts it among the last five.
        [check] = calls_of(model, "You judge whether")
        assert check.messages[-1].content == f"1. {GREETING}\n2. [styled] Charts first."


async def test_in_a_group_each_greeting_is_heard_by_the_others_and_kept_by_its_speaker() -> None:
    ann = SimpleCharacter("Ann Archer", description="An archer.")
    bob = SimpleCharacter("Bob Baker", description="A baker.")
    root = group_hierarchy(
        [("ann", ann), ("bob", bob)], GroupSettings(order=TurnOrder.MANUAL), strategy="single"
    )
    store = MemoryStore()
    greetings = greeting_nodes(
        [
            Opening("director/ann", "Morning, all!", "group greeting 1"),
            Opening("director/bob", "Bread's up.", "group greeting 1"),
        ]
    )
    for node in greetings:
        await store.add(node)
    model = ScriptedChatModel()
    model.default = lambda request: "Hm."
    engine = Engine(root, store, model, RunConfig(guided=False, max_steps=400))

    state = await engine.state(greetings[-1].id)
    assert state.next.kind is NextKind.DONE
    assert [(line.speaker, line.text) for line in state.transcript] == [
        ("director/ann", "Morning, all!"),
        ("director/bob", "Bread's up."),
    ]
    inbound = await engine.send("Hello there.", greetings[-1].id, {"speaker": "ann"})
    leaf = await engine.advance(inbound.id, stop=False)
    [to_ann] = model.calls
    # Ann hears what was said since her greeting (Bob's greeting among it) and has her own
    # greeting as her first line.
    told = to_ann.messages[-1].content
    assert "Bob Baker said: “Bread's up.”" in told and "Morning" not in told
    assert [(m.role, m.content) for m in to_ann.messages[1:2]] == [("assistant", "Morning, all!")]

    again = await engine.send("And you, Bob?", leaf.id, {"speaker": "bob"})
    await engine.advance(again.id, stop=False)
    to_bob = model.calls[-1]
    assert [(m.role, m.content) for m in to_bob.messages[1:2]] == [("assistant", "Bread's up.")]


async def test_a_greeting_offers_no_actions_and_cannot_be_replayed() -> None:
    from personaweb.personas import ActionRefused, allowed_actions

    root = dialogue_hierarchy(mira(), strategy="single")
    store, greeting = await opened(root.path)
    assert greeting.kind is NodeKind.GREETING
    assert allowed_actions(greeting, has_children=False) == frozenset()
    engine = Engine(root, store, ScriptedChatModel(), RunConfig(guided=False))
    with pytest.raises(ActionRefused):
        await engine.branch(greeting.id)


# --- the card's prompt fields ----------------------------------------------------------------


async def test_the_single_prompt_places_scenario_system_prompt_and_post_history() -> None:
    root = dialogue_hierarchy(mira(), strategy="single")
    model = ScriptedChatModel("Charts first.")
    await Engine(root, MemoryStore(), model, RunConfig(guided=False)).run_autonomous("Hi")
    messages = model.calls[0].messages
    system = messages[0].content
    # {{original}} became PersonaWeb's own instructions, in the card's form (its greeting is
    # narrated), then the card's own rule follows.
    assert system.startswith("You are Mira Vance, speaking in a roleplay.")
    assert "You are talking with Joe." in system
    assert "narrate what Mira Vance does in *asterisks*" in system
    assert system.index("never speak or act for Joe") < system.index("sea shanty's rhythm")
    assert "The situation: Joe has just come aboard the Gull" in system
    # No sample lines (they sit in the description until taken): no empty voice section either.
    assert "This is how you talk" not in system and "(none given)" not in system
    # The post-history instructions come after the history: the last message, a system one.
    assert (messages[-1].role, messages[-1].content) == (
        "system",
        "Stay as Mira Vance; never speak for Joe.",
    )
    assert messages[-2].content == "Hi"


async def test_a_card_system_prompt_without_original_replaces_our_instructions() -> None:
    character = mira(system_prompt="You are {{char}}, a mapmaker. Reply in one line.")
    root = dialogue_hierarchy(character, strategy="single")
    system = root.build_messages([])[0].content  # type: ignore[attr-defined]
    assert system.startswith("You are Mira Vance, a mapmaker. Reply in one line.")
    assert "Stay in character" not in system
    # The character's definition stays: the card replaces the instructions, not the character.
    assert "Who you are: Mira Vance is the cartographer" in system


async def test_the_nested_responder_gets_the_card_fields_and_the_rewriter_none() -> None:
    root = dialogue_hierarchy(mira(), strategy="nested")
    model = ScriptedChatModel()
    model.default = plays_every_persona
    await Engine(root, MemoryStore(), model, RunConfig(guided=False)).run_autonomous("Hi")
    [responder] = calls_of(model, "You are Mira Vance")
    assert "The situation:" in responder.messages[0].content
    assert "sea shanty" in responder.messages[0].content
    assert responder.messages[-1].content == "Stay as Mira Vance; never speak for Joe."
    [rewriter] = calls_of(model, "You rewrite")
    sent = " ".join(m.content for m in rewriter.messages)
    for card_only in ("The situation", "sea shanty", "never speak for", "1720"):
        assert card_only not in sent
    # This card's example lines sit in its description, mes_example is empty: the rewriter has
    # none until a person takes them (the character page offers it), and says so (without an
    # empty list); as the card is narrated, it restyles only the speech.
    assert "You have no example of how Mira Vance talks" in rewriter.messages[0].content
    assert "(none given)" not in rewriter.messages[0].content
    assert "Keep every *action* in asterisks" in rewriter.messages[0].content


@pytest.mark.parametrize("strategy", ["single", "nested", "linear"])
@pytest.mark.parametrize("make", [community_card, v3_card])
async def test_no_macro_reaches_any_prompt(strategy: str, make: Callable[..., dict]) -> None:
    sheet = sheet_from_card(make())
    sheet = sheet.with_changes(sample_lines=["Touch my charts and you swim, {{user}}."])
    character = chat_character(sheet.to_dict(), user="Joe")
    root = dialogue_hierarchy(character, strategy=strategy)
    store, greeting = await opened(root.path, "Hello, Joe.")
    model = ScriptedChatModel()
    model.default = plays_every_persona
    engine = Engine(root, store, model, RunConfig(guided=False))
    leaf = await engine.run_autonomous("Where's the compass? A kraken, a storm!", greeting.id)
    await engine.run_autonomous("And the reef?", leaf.id)
    assert model.calls
    for call in model.calls:
        for message in call.messages:
            assert not MACRO.search(message.content), message.content
    if make is v3_card:
        # V3: {{char}} is the nickname.
        [first, *_] = calls_of(model, "You are Mira Vance")
        assert "Stay as Mira; never speak for Joe." in first.messages[-1].content


def test_without_a_name_the_person_is_user() -> None:
    character = chat_character(sheet_from_card(community_card()).to_dict())
    assert character.user == DEFAULT_USER
    assert character.scenario.startswith("User has just come aboard")


# --- lorebooks ----------------------------------------------------------------------------------


async def test_a_lore_entry_fires_on_its_key_and_not_otherwise() -> None:
    root = dialogue_hierarchy(mira(), strategy="single")
    model = ScriptedChatModel("Aye.", "Aye.")
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False))
    quiet = await engine.run_autonomous("Nice weather.")
    loud = await engine.run_autonomous("May I hold your compass?", quiet.id)

    first, second = (c.messages[0].content for c in model.calls)
    constant = "The year is 1720"
    compass = "Mira Vance's compass was her mother's; she lets no one, Joe least, touch it."
    assert constant in first and compass not in first
    assert compass in second
    # Before the character's definition, as the entry's position says.
    assert second.index(compass) < second.index("Who you are:")
    assert "kraken" not in second.lower() and "decoy" not in second

    fired = {f["entry"]: f["why"] for f in loud.data["lore"]["fired"]}
    assert fired == {"The world": "constant", "The compass": "key “compass”"}
    assert quiet.data["lore"]["fired"][0]["entry"] == "The world"


async def test_a_selective_entry_needs_its_secondary_key_and_goes_after_the_definition() -> None:
    root = dialogue_hierarchy(mira(), strategy="single")
    model = ScriptedChatModel("Aye.", "Aye.")
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False))
    leaf = await engine.run_autonomous("A kraken?")
    await engine.run_autonomous("A kraken, in this storm?", leaf.id)
    kraken = "The kraken sleeps under the Grey Reef"
    first, second = (c.messages[0].content for c in model.calls)
    assert kraken not in first
    # After the definition (the card has no goals: its last part is the situation).
    assert second.index("The situation:") < second.index(kraken)


async def test_lore_and_post_history_survive_fitting_to_a_small_context_window() -> None:
    root = dialogue_hierarchy(mira(), strategy="single")
    model = ScriptedChatModel()
    model.default = lambda request: "Aye, " + "and so on " * 20
    model.window = 1400
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False))
    leaf = None
    for turn in range(8):
        text = f"Turn {turn}: " + "a long tale of the sea " * 10 + " and your compass?"
        leaf = await engine.run_autonomous(text, leaf.id if leaf else None)
    assert leaf is not None and leaf.call is not None
    record = leaf.call
    assert record.trimmed is not None and record.trimmed["left_out"] >= 1
    sent = model.calls[-1].messages
    # What the inspector shows is what the model got, message for message.
    assert record.messages == [m.to_dict() for m in sent]
    assert sent[-1].content == "Stay as Mira Vance; never speak for Joe."
    assert "her mother's" in sent[0].content  # the compass entry, within budget
    assert leaf.data["lore"]["budget"] == 1400 // 4


async def test_lore_over_the_budget_is_left_out_and_the_node_says_why() -> None:
    book = sheet_from_card(community_card()).character_book
    assert book is not None
    book["token_budget"] = 30  # room for the constant entry, not for the compass too
    root = dialogue_hierarchy(mira(character_book=book), strategy="single")
    model = ScriptedChatModel("Aye.")
    leaf = await Engine(root, MemoryStore(), model, RunConfig(guided=False)).run_autonomous(
        "Your compass?"
    )
    lore = leaf.data["lore"]
    # The compass has the lower priority (5 against the default 10): it is left out first.
    assert [f["entry"] for f in lore["fired"]] == ["The world"]
    assert [f["entry"] for f in lore["left_out"]] == ["The compass"]
    assert lore["left_out"][0]["left_out"] == "over its book's budget of 30 tokens"


async def test_a_rewriter_without_sample_lines_says_so_on_its_proposal() -> None:
    jon = SimpleCharacter("Jon Johns", sample_lines=["Bro."])
    for character, warned in ((mira(), True), (jon, False)):
        root = dialogue_hierarchy(character, strategy="linear")
        model = ScriptedChatModel()
        model.default = plays_every_persona
        engine = Engine(root, MemoryStore(), model, RunConfig(guided=False))
        leaf = await engine.run_autonomous("Hi")
        path = (await engine.state(leaf.id)).path
        [rewritten] = [n for n in path if n.persona == "pipeline/style_rewriter" and n.is_proposal]
        assert ("warning" in rewritten.data) is warned
        if warned:
            assert rewritten.data["warning"] == (
                "Mira Vance has no sample lines: the rewriter had no voice to imitate"
            )


def test_a_sheet_stored_before_card_fields_were_modelled_still_uses_them() -> None:
    stored = {
        "name": "Old Card",
        "card_extras": {
            "system_prompt": "{{original}} Be terse, {{char}}.",
            "post_history_instructions": "Stay terse.",
            "character_book": {"entries": [{"keys": ["x"], "content": "X.", "constant": True}]},
        },
    }
    root = dialogue_hierarchy(chat_character(stored), strategy="single")
    messages = root.build_messages([])  # type: ignore[attr-defined]
    assert "Be terse, Old Card." in messages[0].content and "X." in messages[0].content
    assert messages[-1].content == "Stay terse."
