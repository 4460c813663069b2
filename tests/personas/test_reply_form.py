"""A character's reply form (characters/reply_form.py) and clean prompts (card_prompt.py): a
narrated card is asked for narration in every strategy, with the room and the stops of its
form, and no prompt carries an empty label; a card's character note sits at its depth."""

from __future__ import annotations

import re

import pytest

from personaweb.characters.cards import sheet_from_card
from personaweb.characters.reply_form import NARRATED, SPOKEN, detect
from personaweb.characters.sheet import load_bundled
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.personas import Engine, MemoryStore, RunConfig, dialogue_hierarchy
from personaweb.personas.dialogue import chat_character
from tests.cardkit import NOTE, wren_card
from tests.personas.test_cards import calls_of, plays_every_persona

EMPTY_LABEL = re.compile(r"^[A-Z][\w ]{0,40}:[ \t]*$(?!\n(?:- |\d+\. |  ))", re.M)
"""A label with nothing after it (a list on the next lines is something)."""


def empty_labels(text: str) -> list[str]:
    return EMPTY_LABEL.findall(text) + (["(none given)"] if "(none given)" in text else [])


# --- what a card shows ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("greeting", "examples", "form"),
    [
        ("*waves* Hello there.", [], NARRATED),
        ("Hello there. What brings you here?", ["Aye, that it does."], SPOKEN),
        ("", [], NARRATED),  # a card that shows nothing was written for roleplay
        ('She looks up from the ledger. "You again?"', [], NARRATED),
        ("Hello.\n\nIt has been a while, hasn't it.", [], NARRATED),
        ("That is **not** how it works.", [], SPOKEN),  # bold is not an action
        ("Fine.", ["*shrugs* If you say so."], NARRATED),
    ],
)
def test_the_form_is_read_off_the_greeting_and_examples(greeting, examples, form):
    assert detect(greeting, examples) == form


def test_a_card_is_imported_with_its_form_and_without_samples_on_single():
    wren = sheet_from_card(wren_card())
    assert wren.reply_form == NARRATED
    assert wren.strategy == "single"  # no sample lines: nothing for a rewriter to imitate
    with_lines = sheet_from_card(wren_card(mes_example="<START>\n{{char}}: *nods* Aye."))
    assert with_lines.strategy == "nested"
    spoken = sheet_from_card(
        wren_card(first_mes="You rowed out in this? Sit down.", description="A keeper.")
    )
    assert spoken.reply_form == SPOKEN
    # A sheet keeps the form it was given over what its card shows.
    assert sheet_from_card(wren_card(extensions={"personaweb": {"reply_form": SPOKEN}})).form() == (
        SPOKEN
    )


def test_the_bundled_characters_speak_lines():
    assert {sheet.form() for sheet in load_bundled()} == {SPOKEN}


# --- the prompts of a narrated card ------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["single", "nested", "linear"])
async def test_a_narrated_card_is_asked_for_narration_and_no_prompt_has_an_empty_label(strategy):
    wren = chat_character(sheet_from_card(wren_card()), user="Joe")
    root = dialogue_hierarchy(wren, strategy=strategy)
    model = ScriptedChatModel()
    model.default = plays_every_persona
    await Engine(root, MemoryStore(), model, RunConfig()).run_autonomous("Is it always this loud?")
    for call in model.calls:
        for message in call.messages:
            assert not empty_labels(message.content), (message.content, strategy)
            assert "{{" not in message.content
    speaking = calls_of(model, "You are Wren Alder")
    assert speaking, [c.messages[0].content[:60] for c in model.calls]
    for call in speaking:
        system = call.messages[0].content
        assert system.startswith("You are Wren Alder, speaking in a roleplay.")
        assert "narrate what Wren Alder does in *asterisks*" in system
        assert "never speak or act for Joe" in system
        assert "one short spoken line" not in system and "Personality:" not in system
        assert call.profile.max_tokens == 450 and "\n\n" not in call.profile.stop
    for call in calls_of(model, "You rewrite"):
        system = call.messages[0].content
        assert "Keep every *action* in asterisks and all the narration" in system
        assert call.profile.max_tokens == 450
    for call in calls_of(model, "You judge whether"):
        assert "states no goals" in call.messages[0].content


async def test_a_spoken_character_keeps_its_line_and_its_stop():
    sara = chat_character(next(s for s in load_bundled() if s.name == "Sara Wilcox"))
    model = ScriptedChatModel("Leave all the rest to me.")
    root = dialogue_hierarchy(sara, strategy="single")
    await Engine(root, MemoryStore(), model, RunConfig()).run_autonomous("Who are you?")
    [call] = model.calls
    assert "one short spoken line" in call.messages[0].content
    assert call.profile.stop == ("\n\n",)
    assert not empty_labels(call.messages[0].content)


# --- the character note -----------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["single", "nested"])
async def test_the_character_note_sits_at_its_depth_for_those_who_speak(strategy):
    card = wren_card(
        mes_example="<START>\n{{char}}: *nods* Aye.", extensions={"depth_prompt": NOTE}
    )
    wren = chat_character(sheet_from_card(card), user="Joe")
    root = dialogue_hierarchy(wren, strategy=strategy)
    model = ScriptedChatModel()
    model.default = plays_every_persona
    engine = Engine(root, MemoryStore(), model, RunConfig())
    leaf = await engine.run_autonomous("First question.")
    leaf = await engine.run_autonomous("Second question.", leaf.id)
    note = "Wren Alder is hiding a letter from Joe."
    speaking = calls_of(model, "You are Wren Alder")
    last = speaking[-1].messages
    at = [i for i, m in enumerate(last) if m.content == note]
    assert len(at) == 1 and last[at[0]].role == "system"
    assert len(last) - at[0] - 1 == 2  # before the last two messages
    for call in model.calls:
        if not call.messages[0].content.startswith("You are Wren Alder"):
            assert all(m.content != note for m in call.messages)  # not the orchestrator's
    store = engine.store
    assert isinstance(store, MemoryStore)
    recorded = [n.data["character_note"] for n in store.all() if "character_note" in n.data]
    assert recorded and recorded[0] == {"depth": 2, "role": "system", "text": note}


async def test_a_note_at_depth_zero_comes_after_the_latest_message():
    card = wren_card(extensions={"depth_prompt": {**NOTE, "depth": 0}})
    wren = chat_character(sheet_from_card(card), user="Joe")
    model = ScriptedChatModel("*nods*")
    await Engine(
        dialogue_hierarchy(wren, strategy="single"), MemoryStore(), model, RunConfig()
    ).run_autonomous("Hello?")
    messages = model.calls[0].messages
    assert messages[-1].content == "Wren Alder is hiding a letter from Joe."
    assert messages[-2].content == "Hello?"
