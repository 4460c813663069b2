"""One copy of each lorebook, for community cards as they were written: a card's own
`character_book` attached again as a standalone SillyTavern World Info file (or a book with
the same entries under another name) is noticed and the person chooses, a prompt consults each
entry once whatever slips through, the World Info book a card names (`extensions.world`) is
linked when the person has it, and the inspector says which key fired an entry left out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from asgiref.sync import sync_to_async
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from personaweb.cast.models import Lorebook
from personaweb.cast.sessions import SessionCards
from personaweb.llm.scripted import ScriptedChatModel
from personaweb.personas import Engine, MemoryStore, RunConfig, dialogue_hierarchy
from personaweb.web import runs
from personaweb.web.models import Character, ChatSession, NodeRow
from tests.cardkit import captain_book, community_card, lore_entry

pytestmark = pytest.mark.django_db

LONG_GREETING = (
    "*{{char}} rolls up a chart and pins it under a brass weight, eyes narrowed at the door.* "
    "You're the new hand, {{user}}? Don't touch that. "
    + " ".join(
        f"*She taps reef number {i} with a pencil.* That one took a ship in the year {1700 + i}."
        for i in range(1, 25)
    )
)
ENTRIES = {
    "The compass": "compass was her mother's",
    "The kraken": "The kraken sleeps under the Grey Reef",
    "The world": "The year is 1720",
}
"""The entries of the card's book that can fire, and a piece of each one's text."""
ASKED = "A kraken in this storm? And may I hold your compass?"
"""Fires the compass, the kraken (with its secondary key) and, always, the world."""


def mira_card(**data: Any) -> dict[str, Any]:
    """A community card: narrated *actions*, a long greeting, example dialogue in the
    description, macros, a four-entry character_book, and `extensions.world` naming it."""
    return community_card(first_mes=LONG_GREETING, **data)


def world_info(book: dict[str, Any]) -> dict[str, Any]:
    """A `character_book` as SillyTavern exports it as World Info: the same entries, other
    field names, listed by uid in reverse."""
    entries = {}
    for uid, entry in reversed(list(enumerate(book["entries"]))):
        entries[str(uid)] = {
            "uid": uid,
            "key": entry["keys"],
            "keysecondary": entry.get("secondary_keys", []),
            "comment": entry.get("name", ""),
            "content": entry["content"],
            "constant": entry.get("constant", False),
            "selective": entry.get("selective", False),
            "selectiveLogic": 0,
            "order": entry["insertion_order"],
            "position": 0 if entry.get("position", "before_char") == "before_char" else 1,
            "disable": not entry["enabled"],
            "probability": 100,
            "displayIndex": 10 - uid,
        }
    return {"entries": entries, "name": book["name"]}


def long_book() -> dict[str, Any]:
    """The card's book with long entries and no budget of its own: one copy of what fires fits
    the default lore budget, two do not."""
    book = captain_book()
    del book["token_budget"]
    tail = " She keeps the log of it in a careful hand, every tide and every name." * 12
    for entry in book["entries"]:
        entry["content"] += tail
    return book


def upload_card(client: Client, card: dict[str, Any]) -> Any:
    file = SimpleUploadedFile("mira.json", json.dumps(card).encode(), "application/json")
    return client.post(reverse("cast:import"), {"card": file})


def upload_book(client: Client, name: str, book: dict[str, Any]) -> Any:
    file = SimpleUploadedFile(name, json.dumps(book).encode(), "application/json")
    return client.post(reverse("cast:lorebook_import"), {"book": file})


def imported_mira(client: Client, owner: Any, **data: Any) -> Character:
    assert upload_card(client, mira_card(**data)).status_code == 302
    return Character.objects.get(owner=owner, name="Mira Vance")


def said(response: Any) -> str:
    return " ".join(str(m) for m in response.context["messages"]) if response.context else ""


def attach(client: Client, book: Lorebook, *characters: Character, **form: str) -> Any:
    data = {"characters": [c.pk for c in characters], **form}
    return client.post(reverse("cast:lorebook_attach", args=[book.pk]), data, follow=True)


# --- the same book attached again -----------------------------------------------------------


@pytest.mark.parametrize("choice", ["replace", "skip"])
def test_the_cards_own_book_attached_as_a_file_is_noticed_and_the_choice_is_done(
    alice_client, alice, choice
):
    mira = imported_mira(alice_client, alice)
    own = mira.data["character_book"]
    # The card's book as SillyTavern exports it: World Info, named as the card's world.
    response = upload_book(alice_client, "Tide Atlas.json", world_info(captain_book()))
    book = Lorebook.objects.get(owner=alice)
    assert response.status_code == 302 and book.name == "Tide Atlas"
    # The card names it as its world, but carries it already: it is not linked.
    assert "Not attached to Mira Vance: it has the same book already." in said(
        alice_client.get(response.url)
    )
    assert not book.characters.exists()
    # The book's page says so beside her name before anything is ticked.
    page = alice_client.get(reverse("cast:lorebook", args=[book.pk])).content.decode()
    assert "(has it already: its card&#x27;s own lorebook “Tide Atlas”)" in page

    asked = attach(alice_client, book, mira)
    html = asked.content.decode()
    assert asked.status_code == 200 and not book.characters.exists()
    assert "Mira Vance has the same entries already, in its card&#x27;s own lorebook" in html
    assert 'name="duplicates" value="replace"' in html and 'name="duplicates" value="skip"' in html
    assert f'name="characters" value="{mira.pk}"' in html

    done = attach(alice_client, book, mira, duplicates=choice)
    mira.refresh_from_db()
    if choice == "replace":
        assert list(book.characters.all()) == [mira]
        assert mira.data["character_book"] is None  # one copy: the standalone one
        assert "Replaced the copies Mira Vance had." in said(done)
    else:
        assert not book.characters.exists()
        assert mira.data["character_book"] == own  # as it came
        assert "Skipped Mira Vance" in said(done)
    # Either way her prompts consult each entry once.
    session = ChatSession.objects.create(owner=alice, title="t", character=mira)
    character = SessionCards.of(session, [mira]).character(mira)
    assert len([e for b in character.lorebooks for e in b.entries]) == 4


def test_a_book_with_the_same_entries_under_another_name_is_noticed(alice_client, alice, sara):
    ports = Lorebook.objects.create(owner=alice, name="Ports", data=captain_book())
    ports.characters.add(sara)
    # The same keys and content: other names, ids, order, settings.
    shuffled = [
        {**e, "id": 90 + i, "name": f"#{i}"} for i, e in enumerate(captain_book()["entries"])
    ]
    harbours = Lorebook.objects.create(
        owner=alice, name="Harbours", data={"entries": shuffled[::-1], "scan_depth": 5}
    )
    html = attach(alice_client, harbours, sara).content.decode()
    assert (
        "Sara Wilcox has the same entries already, in the lorebook “Ports” attached to it" in html
    )
    assert not harbours.characters.exists()

    attach(alice_client, harbours, sara, duplicates="replace")
    assert list(harbours.characters.all()) == [sara] and not ports.characters.exists()


def test_a_different_book_attaches_at_once(alice_client, alice, sara):
    Lorebook.objects.create(owner=alice, name="Tide Atlas", data=captain_book()).characters.add(
        sara
    )
    other = Lorebook.objects.create(
        owner=alice, name="Ports", data={"entries": [lore_entry(["Tortuga"], "Pays in silver.")]}
    )
    response = attach(alice_client, other, sara)
    assert "Ports is attached to Sara Wilcox." in said(response)
    assert list(other.characters.all()) == [sara]


def test_an_undecided_attach_with_a_bad_choice_is_refused_and_changes_nothing(alice_client, alice):
    mira = imported_mira(alice_client, alice)
    own = mira.data["character_book"]
    book = Lorebook.objects.create(owner=alice, name="Copy", data=captain_book())
    response = attach(alice_client, book, mira, duplicates="both")
    assert response.status_code == 400
    assert "Nothing was attached: choose to replace or to skip." in response.content.decode()
    mira.refresh_from_db()
    assert not book.characters.exists() and mira.data["character_book"] == own


def test_the_new_session_form_says_which_books_the_character_has_already(alice_client, alice):
    mira = imported_mira(alice_client, alice)
    upload_book(alice_client, "Tide Atlas.json", world_info(captain_book()))
    other = {"entries": [lore_entry(["Tortuga"], "Tortuga pays in silver.")]}
    upload_book(alice_client, "Ports.json", other)
    html = alice_client.get(reverse("cast:session_card"), {"character": mira.pk}).content
    labels = html.decode().split('name="lorebooks"')[1:]
    assert [("Mira Vance has it already" in label) for label in labels] == [False, True]


# --- the same book imported again -------------------------------------------------------------


def offered(client: Client, name: str, book: dict[str, Any]) -> str:
    """Import a copy: the list page asks, and returns the token of the waiting file."""
    response = upload_book(client, name, book)
    html = response.content.decode()
    assert response.status_code == 200
    assert "You have this lorebook already" in html
    assert 'value="existing"' in html and 'value="replace"' in html
    return response.context["lore_duplicate"]["token"]


def resolve(client: Client, choice: str, token: str) -> Any:
    data = {"duplicate": choice, "pending": token}
    return client.post(reverse("cast:lorebook_import"), data, follow=True)


def test_importing_a_copy_offers_to_use_the_existing_book(alice_client, alice, sara):
    upload_book(alice_client, "Tide Atlas.json", world_info(captain_book()))
    book = Lorebook.objects.get(owner=alice)
    book.characters.add(sara)
    token = offered(alice_client, "atlas-copy.json", captain_book())
    assert Lorebook.objects.count() == 1  # nothing made while the person chooses

    response = resolve(alice_client, "existing", token)
    assert "Kept your lorebook Tide Atlas; the file was not imported." in said(response)
    assert Lorebook.objects.get() == book
    # The choice is made once: the same answer again is refused.
    again = alice_client.post(
        reverse("cast:lorebook_import"), {"duplicate": "replace", "pending": token}
    )
    assert again.status_code == 400 and "no longer waiting" in again.content.decode()


def test_importing_a_copy_as_a_replacement_keeps_the_books_place(alice_client, alice, sara):
    upload_book(alice_client, "Tide Atlas.json", world_info(captain_book()))
    book = Lorebook.objects.get(owner=alice)
    book.characters.add(sara)
    renamed = {**captain_book(), "name": "Tide Atlas, second edition", "scan_depth": 4}
    token = offered(alice_client, "atlas.json", renamed)

    response = resolve(alice_client, "replace", token)
    book.refresh_from_db()
    assert Lorebook.objects.get() == book
    assert book.name == "Tide Atlas, second edition" and book.data == renamed
    assert list(book.characters.all()) == [sara]
    assert "(still attached to Sara Wilcox)" in said(response)


def test_a_bad_answer_to_the_offer_is_refused_and_changes_nothing(alice_client, alice):
    upload_book(alice_client, "Tide Atlas.json", captain_book())
    token = offered(alice_client, "copy.json", captain_book())
    response = resolve(alice_client, "both", token)
    assert response.status_code == 400
    assert "Lorebook import refused: choose to use the lorebook" in response.content.decode()
    forged = resolve(alice_client, "replace", "not-the-token")
    assert forged.status_code == 400 and "no longer waiting" in forged.content.decode()
    assert Lorebook.objects.get().data == captain_book()
    # The waiting file is still there for the real answer.
    assert resolve(alice_client, "replace", token).status_code == 200


# --- a prompt consults each entry once --------------------------------------------------------


def prompt_for(character: Any, window: int | None) -> tuple[str, dict[str, Any]]:
    """The single strategy's system prompt and lore note for ASKED, through the engine."""
    model = ScriptedChatModel("Aye.")
    model.window = window
    root = dialogue_hierarchy(character, strategy="single")
    engine = Engine(root, MemoryStore(), model, RunConfig(guided=False))
    leaf = asyncio.run(engine.run_autonomous(ASKED))
    return model.calls[0].messages[0].content, leaf.data["lore"]


@pytest.mark.parametrize("window", [None, 200_000])
@pytest.mark.parametrize("make_book", [captain_book, long_book])
def test_a_prompt_has_each_fired_entry_once(alice_client, alice, window, make_book):
    mira = imported_mira(alice_client, alice, character_book=make_book())
    # The card's book, attached again as a standalone World Info file and to the session too.
    upload_book(alice_client, "Tide Atlas.json", world_info(make_book()))
    book = Lorebook.objects.get(owner=alice)
    book.characters.add(mira)  # as it could be before duplicates were noticed
    session = ChatSession.objects.create(owner=alice, title="t", character=mira)
    book.sessions.add(session)
    character = SessionCards.of(session, [mira]).character(mira, group=())

    system, lore = prompt_for(character, window)
    for text in ENTRIES.values():
        assert system.count(text) == 1, text
    fired = [f["entry"] for f in lore["fired"]]
    left = [f["entry"] for f in lore["left_out"]]
    assert sorted(fired) == sorted(ENTRIES) and not left
    assert not set(fired) & set(left)
    # The card's own copy is the one consulted, with its settings.
    assert {f["book"] for f in lore["fired"]} == {"Tide Atlas"}
    assert [b.token_budget for b in character.lorebooks] == [make_book().get("token_budget")]


# --- extensions.world -------------------------------------------------------------------------


def test_a_card_links_the_world_book_the_person_has(alice_client, alice):
    harbour = {"entries": [lore_entry(["Tortuga"], "Tortuga pays in silver.")]}
    upload_book(alice_client, "Harbour Charts.json", harbour)
    book = Lorebook.objects.get(owner=alice)
    extensions = {"talkativeness": "0.6", "world": "harbour charts"}
    response = upload_card(alice_client, mira_card(extensions=extensions))
    mira = Character.objects.get(owner=alice, name="Mira Vance")
    assert list(book.characters.all()) == [mira]
    assert "Attached your lorebook Harbour Charts: the card names it as its world." in said(
        alice_client.get(response.url)
    )
    page = alice_client.get(reverse("cast:detail", args=[mira.pk])).content.decode()
    assert "Also consulted:" in page and "is missing" not in page


def test_the_page_says_when_the_world_book_is_missing_and_links_it_when_imported(
    alice_client, alice
):
    mira = imported_mira(alice_client, alice, extensions={"world": "Harbour Charts"})
    url = reverse("cast:detail", args=[mira.pk])
    page = alice_client.get(url).content.decode()
    assert "The card names a lorebook “Harbour Charts” that is missing" in page
    assert f'href="{reverse("cast:list")}#lore-title">import lorebooks</a>' in page

    harbour = {"name": "Harbour Charts", "entries": [lore_entry(["Tortuga"], "Pays in silver.")]}
    response = upload_book(alice_client, "charts.json", harbour)
    assert "Attached to Mira Vance: the card names it as its world." in said(
        alice_client.get(response.url)
    )
    assert list(Lorebook.objects.get(owner=alice).characters.all()) == [mira]
    assert "is missing" not in alice_client.get(url).content.decode()


def test_a_world_the_card_carries_itself_is_not_missing(alice_client, alice):
    mira = imported_mira(alice_client, alice)  # world "Tide Atlas" is its own character_book
    page = alice_client.get(reverse("cast:detail", args=[mira.pk])).content.decode()
    assert "Tide Atlas" in page and "is missing" not in page


def test_a_world_book_of_someone_else_is_not_linked(alice_client, alice, bob):
    Lorebook.objects.create(owner=bob, name="Harbour Charts", data={"entries": []})
    mira = imported_mira(alice_client, alice, extensions={"world": "Harbour Charts"})
    assert not Lorebook.objects.filter(characters=mira).exists()
    page = alice_client.get(reverse("cast:detail", args=[mira.pk])).content.decode()
    assert "“Harbour Charts” that is missing" in page


# --- the inspector ----------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_the_inspector_shows_the_key_a_left_out_entry_matched(
    async_client, alice, llm_server, clean_runs
):
    book = {**captain_book(), "token_budget": 30}  # room for the constant entry only
    await sync_to_async(async_client.force_login)(alice)
    card = json.dumps(mira_card(character_book=book)).encode()
    upload = SimpleUploadedFile("mira.json", card, "application/json")
    await async_client.post(reverse("cast:import"), {"card": upload})
    mira = await Character.objects.aget(owner=alice)
    form = {"hierarchy": "dialogue", "strategy": "single", "character": str(mira.pk)}
    await async_client.post(reverse("session_new"), {**form, "mode": "autonomous"})
    session = await ChatSession.objects.aget(owner=alice)
    await async_client.post(f"{session.get_absolute_url()}send/", {"text": "Your compass?"})
    await runs.wait(session.pk)

    rows = [r async for r in NodeRow.objects.filter(session=session).order_by("seq")]
    proposal = next(r for r in rows if (r.data or {}).get("lore"))
    [left] = proposal.data["lore"]["left_out"]
    assert left["entry"] == "The compass" and left["why"] == "key “compass”"
    html = (
        await async_client.get(f"{session.get_absolute_url()}inspect/{proposal.id}/")
    ).content.decode()
    shown = html[html.index("left out:") :]
    assert "The compass" in shown
    assert "key “compass”; Tide Atlas; over its book&#x27;s budget of 30 tokens" in shown
