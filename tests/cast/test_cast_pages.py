"""The Characters pages: ownership, the list, create, edit, duplicate, delete, escaping."""

from __future__ import annotations

from typing import Any

import pytest
from django.urls import reverse

from personaweb.cast.store import sheet_of
from personaweb.characters.sheet import load_bundled
from personaweb.web.models import Character, ChatSession

pytestmark = pytest.mark.django_db


def form_data(**overrides: Any) -> dict[str, Any]:
    """A complete, valid form submission."""
    data = {
        "name": "Bess Tolliver",
        "description": "Runs the harbour inn.",
        "personality": "warm, nosy",
        "scenario": "A wet night at the inn.",
        "mood": "busy",
        "goals": "Keep the inn full\n\nHear every rumour\n",
        "sample_lines": "Sit down, love, you're dripping on my floor.\nMore ale?",
        "greeting": "Evening!",
        "strategy": "linear",
        "talkativeness": "0.9",
        "tags": "inn, gossip",
        "creator_notes": "",
        "responder__model": "smollm2",
        "responder__temperature": "0.9",
        "responder__max_tokens": "200",
    }
    return data | overrides


# --- who may see what ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "name", "extra"),
    [
        ("get", "cast:detail", {}),
        ("get", "cast:edit", {}),
        ("post", "cast:edit", {}),
        ("get", "cast:delete", {}),
        ("post", "cast:delete", {}),
        ("post", "cast:duplicate", {}),
        ("get", "cast:export", {"fmt": "v2.json"}),
        ("get", "cast:export", {"fmt": "v3.png"}),
    ],
)
def test_it_hides_alices_character_from_bob(bob_client, sara, method, name, extra):
    url = reverse(name, kwargs={"pk": sara.pk, **extra})
    response = getattr(bob_client, method)(url, form_data(name="Hijacked"))
    # 404, like a missing id: bob learns nothing, and alice's character is untouched.
    assert response.status_code == 404
    sara.refresh_from_db()
    assert sara.name == "Sara Wilcox"
    assert Character.objects.filter(owner=sara.owner).count() == 1


def test_it_sends_anonymous_visitors_to_log_in(client, sara):
    response = client.get(reverse("cast:list"))
    assert response.status_code == 302
    assert reverse("login") in response["Location"]


def test_the_list_shows_only_the_owners_characters(alice_client, sara, bob):
    Character.objects.create(owner=bob, name="Bob's Own", slug="bobs_own", data={"name": "x"})
    page = alice_client.get(reverse("cast:list")).content.decode()
    assert "Sara Wilcox" in page
    assert "A proud lady of a northern house." in page
    assert "nested" in page
    assert "Bob&#x27;s Own" not in page and "Bob's Own" not in page


def test_the_list_is_sorted_by_name_and_counts_sessions(alice_client, alice, sara, make_session):
    alice_client.post(reverse("cast:new"), form_data(name="abel"))
    make_session(alice)
    characters = list(alice_client.get(reverse("cast:list")).context["characters"])
    assert [c.name for c in characters] == sorted((c.name for c in characters), key=str.lower)
    assert characters[0].name == "abel"
    assert {c.name: c.session_count for c in characters}["abel"] == 0


def test_a_first_visit_gets_the_bundled_characters(alice_client, alice):
    response = alice_client.get(reverse("cast:list"))
    assert response.status_code == 200
    bundled = load_bundled()
    assert Character.objects.filter(owner=alice).count() == len(bundled)
    for sheet in bundled:
        assert sheet.name in response.content.decode()


# --- create ----------------------------------------------------------------------------------


def test_it_creates_a_character_from_every_field(alice_client, alice):
    response = alice_client.post(reverse("cast:new"), form_data())
    character = Character.objects.get(owner=alice, name="Bess Tolliver")
    assert response.status_code == 302
    assert response["Location"] == reverse("cast:detail", args=[character.pk])
    sheet = sheet_of(character)
    assert sheet.slug == character.slug == "bess_tolliver"
    assert sheet.goals == ["Keep the inn full", "Hear every rumour"]
    assert sheet.sample_lines == ["Sit down, love, you're dripping on my floor.", "More ale?"]
    assert sheet.strategy == "linear"
    assert sheet.talkativeness == 0.9
    assert sheet.tags == ["inn", "gossip"]
    assert sheet.scenario == "A wet night at the inn."
    assert set(sheet.profiles) == {"responder"}  # blank roles keep the default profile
    assert sheet.profiles["responder"].model == "smollm2"
    assert sheet.profiles["responder"].temperature == 0.9
    assert sheet.profiles["responder"].max_tokens == 200


@pytest.mark.parametrize(
    ("overrides", "message", "field_id"),
    [
        ({"name": "  "}, "name: required", "id_name"),
        ({"talkativeness": "3"}, "talkativeness: 3.0 is outside 0..1", "id_talkativeness"),
        (
            {"responder__temperature": "5"},
            "profiles.responder.temperature: 5.0 is outside 0..2.0",
            "id_responder__temperature",
        ),
        (
            {"alignment__max_tokens": "0"},
            "profiles.alignment.max_tokens: must be a whole number in 1..32768",
            "id_alignment__max_tokens",
        ),
        ({"goals": "x" * 501}, "goals[0]: 501 characters, at most 500 allowed", "id_goals"),
        ({"strategy": "chaotic"}, "Select a valid choice", "id_strategy"),
        ({"talkativeness": "lots"}, "Enter a number", "id_talkativeness"),
    ],
)
def test_create_with_errors_says_why_and_saves_nothing(
    alice_client, alice, overrides, message, field_id
):
    response = alice_client.post(reverse("cast:new"), form_data(**overrides))
    page = response.content.decode()
    assert response.status_code == 400
    assert message in page
    assert "Nothing was saved" in page
    assert f'href="#{field_id}"' in page  # the summary links to the field in error
    assert not Character.objects.filter(owner=alice).exists()
    # What the person typed is still there.
    assert "Sit down, love, you&#x27;re dripping on my floor." in page


def test_it_shows_every_error_at_once(alice_client, alice):
    response = alice_client.post(
        reverse("cast:new"),
        form_data(name="", talkativeness="2", responder__temperature="9", tags="x" * 65),
    )
    page = response.content.decode()
    for message in (
        "name: required",
        "talkativeness: 2.0 is outside 0..1",
        "profiles.responder.temperature: 9.0 is outside 0..2.0",
        "tags[0]: 65 characters, at most 64 allowed",
    ):
        assert page.count(message) == 2, message  # in the summary and next to the field
    assert "slug:" not in page  # the empty name's slug is the same mistake, said once
    assert not Character.objects.filter(owner=alice).exists()


def test_it_refuses_a_name_the_owner_already_uses(alice_client, sara):
    response = alice_client.post(reverse("cast:new"), form_data(name="sara WILCOX"))
    assert response.status_code == 400
    assert "name: you already have a character called &#x27;sara WILCOX&#x27;" in (
        response.content.decode()
    )
    assert Character.objects.filter(owner=sara.owner).count() == 1


def test_another_owner_may_use_the_same_name(bob_client, sara, bob):
    response = bob_client.post(reverse("cast:new"), form_data(name="Sara Wilcox"))
    assert response.status_code == 302
    assert Character.objects.get(owner=bob).slug == "sara_wilcox"


def test_a_slug_held_by_a_renamed_character_gets_a_suffix(alice_client, sara):
    # Renaming keeps the slug (group chats address characters by it) ...
    alice_client.post(
        reverse("cast:edit", args=[sara.pk]), form_data(name="Lady Wilcox", strategy="nested")
    )
    sara.refresh_from_db()
    assert (sara.name, sara.slug) == ("Lady Wilcox", "sara_wilcox")
    # ... so the next "Sara Wilcox" takes a numbered slug instead of failing.
    alice_client.post(reverse("cast:new"), form_data(name="Sara Wilcox"))
    assert Character.objects.get(owner=sara.owner, name="Sara Wilcox").slug == "sara_wilcox_2"


# --- edit ------------------------------------------------------------------------------------


def test_the_edit_form_shows_the_current_sheet(alice_client, sara):
    page = alice_client.get(reverse("cast:edit", args=[sara.pk])).content.decode()
    assert 'value="Sara Wilcox"' in page
    assert "Leave all the rest to me.\nWhat&#x27;s done is done." in page
    assert '<option value="nested" selected>' in page


def test_edit_saves_the_changes_and_keeps_what_the_form_does_not_show(alice_client, sara):
    response = alice_client.post(
        reverse("cast:edit", args=[sara.pk]),
        form_data(name="Sara Wilcox", mood="cold", strategy="single"),
    )
    assert response.status_code == 302
    sara.refresh_from_db()
    sheet = sheet_of(sara)
    assert sheet.mood == "cold"
    assert sheet.strategy == "single"
    assert sheet.slug == "sara_wilcox"
    # Card data the form has no field for survives the edit.
    assert sheet.extensions == {"depth_prompt": {"prompt": "stay cold", "depth": 4}}
    assert sheet.card_extras == {"creator": "someone", "character_version": "7"}


def test_edit_keeps_a_profiles_endpoint_and_other_roles(alice_client, sara):
    data = dict(sara.data)
    data["profiles"] = {
        "responder": {"model": "m", "temperature": 0.2, "base_url": "http://llm.local/v1"},
        "judge": {"model": "big"},
    }
    sara.data = data
    sara.save()
    alice_client.post(reverse("cast:edit", args=[sara.pk]), form_data(name="Sara Wilcox"))
    sara.refresh_from_db()
    profiles = sheet_of(sara).profiles
    assert profiles["responder"].model == "smollm2"
    assert profiles["responder"].base_url == "http://llm.local/v1"
    assert profiles["judge"].model == "big"


def test_edit_with_errors_changes_nothing(alice_client, sara):
    before = dict(sara.data)
    response = alice_client.post(
        reverse("cast:edit", args=[sara.pk]), form_data(name="New Name", talkativeness="-1")
    )
    assert response.status_code == 400
    assert "talkativeness: -1.0 is outside 0..1" in response.content.decode()
    sara.refresh_from_db()
    assert sara.name == "Sara Wilcox"
    assert sara.data == before


def test_edit_refuses_a_name_of_another_of_the_owners_characters(alice_client, alice, sara):
    alice_client.post(reverse("cast:new"), form_data(name="Bess Tolliver"))
    response = alice_client.post(
        reverse("cast:edit", args=[sara.pk]), form_data(name="Bess Tolliver")
    )
    assert response.status_code == 400
    sara.refresh_from_db()
    assert sara.name == "Sara Wilcox"


# --- duplicate and delete --------------------------------------------------------------------


def test_duplicate_makes_a_copy_with_a_fresh_slug(alice_client, sara):
    url = reverse("cast:duplicate", args=[sara.pk])
    first = alice_client.post(url)
    alice_client.post(url)
    copies = Character.objects.filter(owner=sara.owner).exclude(pk=sara.pk).order_by("pk")
    assert [(c.name, c.slug) for c in copies] == [
        ("Sara Wilcox (copy)", "sara_wilcox_copy"),
        ("Sara Wilcox (copy 2)", "sara_wilcox_copy_2"),
    ]
    assert first["Location"] == reverse("cast:edit", args=[copies[0].pk])
    copy = sheet_of(copies[0])
    original = sheet_of(sara)
    assert copy.sample_lines == original.sample_lines
    assert copy.extensions == original.extensions
    assert copy.card_extras == original.card_extras


def test_duplicate_needs_a_post(alice_client, sara):
    assert alice_client.get(reverse("cast:duplicate", args=[sara.pk])).status_code == 405
    assert Character.objects.filter(owner=sara.owner).count() == 1


def test_delete_asks_first_and_deletes_on_post(alice_client, sara, make_session):
    url = reverse("cast:delete", args=[sara.pk])
    page = alice_client.get(url)
    assert page.status_code == 200
    assert "Delete Sara Wilcox?" in page.content.decode()
    assert Character.objects.filter(pk=sara.pk).exists()  # a GET never deletes

    response = alice_client.post(url)
    assert response.status_code == 302
    assert response["Location"] == reverse("cast:list")
    assert not Character.objects.filter(pk=sara.pk).exists()


def test_deleting_a_character_keeps_its_sessions(alice_client, alice, make_session):
    session = make_session(alice)
    alice_client.post(reverse("cast:delete", args=[session.character.pk]))
    session.refresh_from_db()
    assert session.character is None
    assert ChatSession.objects.filter(pk=session.pk).exists()


def test_posts_need_a_csrf_token(alice, sara):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert strict.post(reverse("cast:delete", args=[sara.pk])).status_code == 403
    assert strict.post(reverse("cast:duplicate", args=[sara.pk])).status_code == 403
    assert strict.post(reverse("cast:new"), form_data()).status_code == 403
    assert Character.objects.filter(owner=alice).count() == 1


# --- escaping --------------------------------------------------------------------------------

XSS = "<script>alert(1)</script>"


def test_character_text_is_escaped_on_every_page(alice_client, alice):
    alice_client.post(
        reverse("cast:new"),
        form_data(name=XSS, description=f"<img src=x onerror=alert(2)>{XSS}"),
    )
    character = Character.objects.get(owner=alice)
    for url in (
        reverse("cast:list"),
        reverse("cast:detail", args=[character.pk]),
        reverse("cast:edit", args=[character.pk]),
        reverse("cast:delete", args=[character.pk]),
    ):
        page = alice_client.get(url).content.decode()
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url
        assert XSS not in page, url
        assert "<img src=x" not in page, url


def test_an_error_page_escapes_what_was_typed(alice_client):
    response = alice_client.post(reverse("cast:new"), form_data(name=XSS, talkativeness="9"))
    page = response.content.decode()
    assert response.status_code == 400
    assert XSS not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
