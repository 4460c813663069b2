"""A community card on the Characters pages: imported as a V2 PNG and exported back intact,
shown as the model will read it, its hidden example lines offered as sample lines, its card
fields and lorebook edited; standalone lorebooks imported, edited, attached and exported."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse

from personaweb.cast.models import Lorebook
from personaweb.cast.sessions import SessionCards
from personaweb.cast.store import sheet_of
from personaweb.characters import parse_card, png
from personaweb.web.models import Character, ChatSession
from tests.cardkit import NOTE, as_png, captain_book, community_card, lore_entry, v3_card, wren_card

pytestmark = pytest.mark.django_db


def upload(client: Client, name: str, data: bytes, content_type: str = "image/png") -> Any:
    file = SimpleUploadedFile(name, data, content_type=content_type)
    return client.post(reverse("cast:import"), {"card": file})


def imported(client: Client, owner: Any, card: dict[str, Any] | None = None) -> Character:
    assert upload(client, "mira.png", as_png(card or community_card())).status_code == 302
    return Character.objects.filter(owner=owner).latest("pk")


def stored_book() -> dict[str, Any]:
    """The card's book as PersonaWeb stores and exports it: each entry with the `use_regex` V3
    requires (false where the card had none; lorebook.complete_book)."""
    book = captain_book()
    for entry in book["entries"]:
        entry.setdefault("use_regex", False)
    return book


def card_in(data: bytes, fmt: str) -> dict[str, Any]:
    if fmt.endswith("json"):
        return json.loads(data)
    keyword = "ccv3" if fmt.startswith("v3") else "chara"
    text = png.text_chunks(png.read_chunks(data))[keyword]
    return json.loads(base64.b64decode(text))


# --- import and export ------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["v2.png", "v3.png", "v2.json", "v3.json"])
def test_a_community_card_exports_back_intact(alice_client, alice, fmt):
    original = community_card()
    character = imported(alice_client, alice, original)
    body = alice_client.get(reverse("cast:export", args=[character.pk, fmt])).content
    data = card_in(body, fmt)["data"]
    for key, value in original["data"].items():
        if key == "extensions":
            assert {k: v for k, v in data[key].items() if k != "personaweb"} == value
        elif key == "mes_example":
            assert data[key] == ""  # no sample lines taken yet
        elif key == "character_book":
            assert data[key] == stored_book()
        else:
            assert data[key] == value, key
    # And back in: the same character.
    again = parse_card(body, f"mira.{fmt.split('.')[1]}")
    assert again.to_dict() == sheet_of(character).to_dict()


def test_a_v3_card_keeps_its_group_greetings_nickname_and_assets(alice_client, alice):
    original = v3_card()
    character = imported(alice_client, alice, original)
    sheet = sheet_of(character)
    assert sheet.group_greetings == original["data"]["group_only_greetings"]
    assert sheet.card_extras["nickname"] == "Mira"
    data = json.loads(
        alice_client.get(reverse("cast:export", args=[character.pk, "v3.json"])).content
    )
    for key in ("group_only_greetings", "nickname", "assets", "creation_date", "character_book"):
        assert data["data"][key] == original["data"][key], key


def test_the_stored_picture_holds_no_card_text(alice_client, alice):
    character = imported(alice_client, alice)
    assert png.text_chunks(png.read_chunks(bytes(character.avatar))) == {}
    idat = [c for c in png.read_chunks(bytes(character.avatar)) if c.type == b"IDAT"]
    assert idat == [c for c in png.read_chunks(png.solid_avatar("a portrait")) if c.type == b"IDAT"]


# --- the character page -----------------------------------------------------------------------


def test_the_page_shows_card_text_as_the_model_will_read_it(alice_client, alice):
    character = imported(alice_client, alice)
    page = alice_client.get(reverse("cast:detail", args=[character.pk])).content.decode()
    assert "Mira Vance is the cartographer of the Gull" in page
    assert "She distrusts alice" in page  # {{user}}: the viewer's name
    assert "Storm&#x27;s coming, alice." in page  # an alternate greeting
    assert "[PersonaWeb&#x27;s own instructions] Write Mira Vance&#x27;s next reply" in page
    assert "Stay as Mira Vance; never speak for alice." in page
    assert "Tide Atlas · 4 entries" in page and "The compass" in page
    # The only raw macros on the page are in the note that explains them.
    text = page.split("macros-note")[1]
    assert "{{user}}" not in text.split("</p>", 1)[1] and "{{char}}" not in text.split("</p>", 1)[1]


def test_example_lines_in_the_description_are_offered_then_taken(alice_client, alice):
    character = imported(alice_client, alice)
    page = alice_client.get(reverse("cast:detail", args=[character.pk])).content.decode()
    assert "No sample lines." in page
    assert "Example lines in the card's description (2)" in page
    assert "North is where I say it is, sailor." in page
    assert "Touch my charts and you swim, alice." in page

    response = alice_client.post(reverse("cast:samples", args=[character.pk]))
    assert response.status_code == 302
    character.refresh_from_db()
    # Stored as the card wrote them (macros and all); the page and the prompts fill them in.
    assert sheet_of(character).sample_lines == [
        "North is where I say it is, sailor.",
        "Touch my charts and you swim, {{user}}.",
    ]
    page = alice_client.get(reverse("cast:detail", args=[character.pk])).content.decode()
    assert "No sample lines." not in page and "Take them as sample lines" not in page
    # Taking them twice does nothing.
    alice_client.post(reverse("cast:samples", args=[character.pk]))
    character.refresh_from_db()
    assert len(sheet_of(character).sample_lines) == 2


def test_the_list_flags_characters_without_sample_lines(alice_client, alice):
    imported(alice_client, alice)
    page = alice_client.get(reverse("cast:list")).content.decode()
    assert "0 ⚠" in page


def test_card_fields_and_greetings_are_edited_on_the_form(alice_client, alice):
    character = imported(alice_client, alice)
    url = reverse("cast:edit", args=[character.pk])
    form = alice_client.get(url).context["form"]
    assert form.initial["system_prompt"] == community_card()["data"]["system_prompt"]
    data = {k: v for k, v in form.initial.items() if v is not None}
    assert data["alternate_greeting_2"].startswith("Storm's coming")
    data["alternate_greeting_3"] = "A third way to say hello, {{user}}."  # the empty box
    data["alternate_greeting_1"] = ""  # cleared: it goes
    data["post_history_instructions"] = "Be brief, {{char}}."
    data["group_greeting_1"] = "Hello, all of you."
    assert alice_client.post(url, data).status_code == 302
    sheet = sheet_of(Character.objects.get(pk=character.pk))
    assert sheet.alternate_greetings == [
        "Storm's coming, {{user}}. Tie yourself to something.",
        "A third way to say hello, {{user}}.",
    ]
    assert sheet.post_history_instructions == "Be brief, {{char}}."
    assert sheet.group_greetings == ["Hello, all of you."]
    assert sheet.character_book == stored_book()  # the form leaves the lorebook alone


def test_a_forged_greeting_box_number_cannot_grow_the_form_without_bound(alice_client, alice):
    character = imported(alice_client, alice)
    url = reverse("cast:edit", args=[character.pk])
    data = {k: v for k, v in alice_client.get(url).context["form"].initial.items() if v}
    data["alternate_greeting_999999999"] = "x"
    data["alternate_greeting_abc"] = "y"
    response = alice_client.post(url, data)
    assert response.status_code == 302


# --- the card's own lorebook -------------------------------------------------------------------


def entry_forms(book: dict[str, Any], page_form: Any) -> dict[str, Any]:
    """The editor's POST data as the page renders it (management form and every entry)."""
    data: dict[str, Any] = {}
    for name, field in page_form[0].fields.items():
        value = page_form[0].initial.get(name, field.initial)
        if value is not None and value is not False:
            data[name] = value
    formset = page_form[1]
    data.update(
        {
            "entry-TOTAL_FORMS": str(len(formset.forms)),
            "entry-INITIAL_FORMS": str(formset.initial_form_count()),
            "entry-MIN_NUM_FORMS": "0",
            "entry-MAX_NUM_FORMS": "1000",
        }
    )
    for i, form in enumerate(formset.forms):
        for name, field in form.fields.items():
            value = form.initial.get(name, field.initial)
            if value is None or value is False:
                continue
            data[f"entry-{i}-{name}"] = "on" if value is True else value
    return data


def editor(client: Client, url: str) -> tuple[Any, Any]:
    response = client.get(url)
    assert response.status_code == 200
    return response.context["book_form"], response.context["entries"]


def test_the_cards_lorebook_is_edited_and_untouched_entries_stay_intact(alice_client, alice):
    character = imported(alice_client, alice)
    url = reverse("cast:character_lorebook", args=[character.pk])
    book_form, entries = editor(alice_client, url)
    assert len(entries.forms) == 5  # four entries and an empty one for a new entry
    data = entry_forms(captain_book(), (book_form, entries))
    data["entry-1-keys"] = "kraken, sea serpent"  # change the selective entry's keys
    data["entry-3-DELETE"] = "on"  # drop the disabled decoy
    data["entry-4-keys"] = "gull"  # and write a new one
    data["entry-4-content"] = "The Gull leaks at the bow."
    response = alice_client.post(url, data)
    assert response.status_code == 302, response.content.decode()[:2000]
    book = sheet_of(Character.objects.get(pk=character.pk)).character_book
    assert book is not None
    original = stored_book()
    assert book["extensions"] == original["extensions"] and book["name"] == "Tide Atlas"
    # Unchanged entries are the stored objects, unknown keys and all.
    assert book["entries"][0] == original["entries"][0]
    assert book["entries"][2] == original["entries"][2]
    changed = book["entries"][1]
    assert changed["keys"] == ["kraken", "sea serpent"]
    assert changed["secondary_keys"] == ["storm", "reef"] and changed["selective"] is True
    assert changed["id"] == 2 and changed["name"] == "The kraken"
    new = book["entries"][3]
    assert (new["keys"], new["content"], new["id"]) == (["gull"], "The Gull leaks at the bow.", 5)
    assert len(book["entries"]) == 4


def test_a_character_without_a_book_can_get_one(alice_client, alice, sara):
    url = reverse("cast:character_lorebook", args=[sara.pk])
    book_form, entries = editor(alice_client, url)
    data = entry_forms({}, (book_form, entries))
    data["entry-0-keys"] = "Thomas"
    data["entry-0-content"] = "Thomas is her son."
    assert alice_client.post(url, data).status_code == 302
    book = sheet_of(Character.objects.get(pk=sara.pk)).character_book
    assert book is not None and book["name"] == "Sara Wilcox's lorebook"
    assert book["entries"][0]["content"] == "Thomas is her son."


def test_strangers_cannot_see_or_edit_a_characters_lorebook(bob_client, sara):
    url = reverse("cast:character_lorebook", args=[sara.pk])
    assert bob_client.get(url).status_code == 404
    assert bob_client.post(url, {}).status_code == 404
    assert bob_client.post(reverse("cast:samples", args=[sara.pk])).status_code == 404


# --- standalone lorebooks --------------------------------------------------------------------


WORLD_INFO = {
    "entries": {
        "0": {
            "uid": 0,
            "key": ["Tortuga"],
            "keysecondary": [],
            "comment": "Tortuga",
            "content": "Tortuga pays in silver.",
            "constant": False,
            "selective": False,
            "selectiveLogic": 0,
            "order": 100,
            "position": 0,
            "disable": False,
            "probability": 100,
            "useProbability": True,
            "depth": 4,
        }
    }
}


def upload_book(client: Client, name: str, data: bytes) -> Any:
    file = SimpleUploadedFile(name, data, content_type="application/json")
    return client.post(reverse("cast:lorebook_import"), {"book": file})


def test_a_world_info_file_is_imported_attached_and_consulted(
    alice_client, alice, sara, bob_client, bob
):
    response = upload_book(alice_client, "Ports.json", json.dumps(WORLD_INFO).encode())
    book = Lorebook.objects.get(owner=alice)
    assert response.status_code == 302 and book.name == "Ports"
    assert book.data["entries"][0]["keys"] == ["Tortuga"]
    page = alice_client.get(reverse("cast:lorebook", args=[book.pk])).content.decode()
    assert "Tortuga pays in silver." in page
    alice_client.post(reverse("cast:lorebook_attach", args=[book.pk]), {"characters": [sara.pk]})
    assert list(book.characters.all()) == [sara]
    session = ChatSession.objects.create(owner=alice, title="t", character=sara)
    character = SessionCards.of(session, [sara]).character(sara)
    assert [b.name for b in character.lorebooks] == ["Ports"]
    # Exported, it imports back the same (for someone who does not have it yet: alice is told
    # she has it already, tests/cast/test_lorebook_once.py).
    exported = alice_client.get(reverse("cast:lorebook_export", args=[book.pk])).content
    assert upload_book(bob_client, "again.json", exported).status_code == 302
    again = Lorebook.objects.get(owner=bob)
    assert again.name == "Ports"
    assert {k: v for k, v in again.data.items() if k != "name"} == book.data


def test_a_lorebook_is_edited_on_its_page(alice_client, alice):
    upload_book(alice_client, "Ports.json", json.dumps(WORLD_INFO).encode())
    book = Lorebook.objects.get(owner=alice)
    url = reverse("cast:lorebook", args=[book.pk])
    data = entry_forms(book.data, editor(alice_client, url))
    data["entry-0-content"] = "Tortuga pays in silver, and late."
    data["token_budget"] = "200"
    assert alice_client.post(url, data).status_code == 302
    book.refresh_from_db()
    assert book.data["entries"][0]["content"] == "Tortuga pays in silver, and late."
    assert book.data["entries"][0]["extensions"]["probability"] == 100
    assert book.data["token_budget"] == 200


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"{not json", "not valid JSON"),
        (b'{"entries": [], "x": NaN}', "NaN is not a number JSON allows"),
        (b'{"entries": [{"keys": ["a"], "content": "\\ud800"}]}', "lone surrogate"),
        (b'{"title": "nope"}', "not a lorebook"),
        (b"[1]", "must be a JSON object"),
    ],
)
def test_a_bad_lorebook_file_is_refused_and_creates_nothing(alice_client, alice, data, reason):
    response = upload_book(alice_client, "bad.json", data)
    assert response.status_code == 400
    assert reason in response.content.decode()
    assert not Lorebook.objects.exists()


def test_strangers_cannot_touch_a_lorebook(alice_client, bob_client, alice):
    upload_book(alice_client, "Ports.json", json.dumps(WORLD_INFO).encode())
    book = Lorebook.objects.get(owner=alice)
    for name in ("cast:lorebook", "cast:lorebook_export"):
        assert bob_client.get(reverse(name, args=[book.pk])).status_code == 404
    for name in ("cast:lorebook_attach", "cast:lorebook_delete"):
        assert bob_client.post(reverse(name, args=[book.pk])).status_code == 404
    assert Lorebook.objects.filter(pk=book.pk).exists()


def test_a_book_attaches_only_to_its_owners_characters(alice_client, alice, bob):
    upload_book(alice_client, "Ports.json", json.dumps(WORLD_INFO).encode())
    book = Lorebook.objects.get(owner=alice)
    theirs = Character.objects.create(owner=bob, name="Bob's", slug="bobs", data={"name": "Bob's"})
    alice_client.post(reverse("cast:lorebook_attach", args=[book.pk]), {"characters": [theirs.pk]})
    assert not book.characters.exists()


def test_a_lorebook_entry_content_is_escaped(alice_client, alice):
    hostile = {"entries": [lore_entry(["x"], "<script>alert(1)</script>")]}
    upload_book(alice_client, "x.json", json.dumps(hostile).encode())
    book = Lorebook.objects.get(owner=alice)
    page = alice_client.get(reverse("cast:lorebook", args=[book.pk])).content.decode()
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)" in page


def test_the_page_shows_the_reply_form_and_the_character_note(alice_client, alice):
    card = wren_card(extensions={"depth_prompt": NOTE})
    response = upload(alice_client, "wren.json", json.dumps(card).encode(), "application/json")
    assert response.status_code == 302
    page = alice_client.get(response["Location"]).content.decode()
    assert "<dt>reply form</dt><dd>narrated</dd>" in page
    # No sample lines: it starts on single, and the page says why nested needs them.
    assert "<dt>strategy</dt><dd>single" in page and "nested and linear need sample lines" in page
    assert "Character note" in page and "Wren Alder is hiding a letter from alice." in page
    assert "before the last 2 messages" in page
