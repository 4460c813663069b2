"""A character's strategy and LLM profiles, as web sessions use them and as the pages say:
the new-session form starts on the character's strategy, profiles apply unless the session
overrides, and an endpoint a card names is called only once its owner confirmed it."""

from __future__ import annotations

import pytest
from django.test import Client
from django.urls import reverse

from personaweb.llm.types import LLMProfile
from personaweb.web import building
from personaweb.web.models import Character, ChatSession

pytestmark = pytest.mark.django_db

CARD_URL = "http://llm.example/v1"


@pytest.fixture
def card_endpoint(sara: Character) -> Character:
    """Sara with a responder profile whose endpoint came with her card (not confirmed)."""
    sara.data = {
        **sara.data,
        "profiles": {"responder": {"model": "far-model", "temperature": 0.4, "base_url": CARD_URL}},
    }
    sara.save()
    return sara


def responder_of(character: Character, **session_fields) -> LLMProfile:
    session = ChatSession.objects.create(
        owner=character.owner, character=character, hierarchy="dialogue", **session_fields
    )
    root = building.hierarchy_for(session)
    return next(p for p in root.walk() if p.name == "responder").profile


def confirm(client: Client, character: Character, url: str = CARD_URL):
    return client.post(reverse("cast:confirm_endpoint", args=[character.pk]), {"url": url})


# --- what sessions do ------------------------------------------------------------------------


def test_a_session_uses_the_characters_profile_but_not_its_unconfirmed_endpoint(card_endpoint):
    profile = responder_of(card_endpoint)
    assert profile.model == "far-model" and profile.temperature == 0.4
    # A card from a stranger must not make the server call a host its owner did not choose.
    assert profile.base_url is None


def test_a_confirmed_endpoint_is_used(alice_client, card_endpoint):
    assert confirm(alice_client, card_endpoint).status_code == 302
    card_endpoint.refresh_from_db()
    assert card_endpoint.confirmed_endpoints == [CARD_URL]
    assert responder_of(card_endpoint).base_url == CARD_URL


def test_the_session_overrides_the_characters_profile(card_endpoint):
    chosen = {"orchestrator/responder": {"model": "mine", "temperature": 1.0}}
    profile = responder_of(card_endpoint, profiles=chosen)
    assert (profile.model, profile.base_url) == ("mine", None)


def test_a_confirmation_is_not_in_the_sheet_so_cards_never_carry_it(alice_client, card_endpoint):
    confirm(alice_client, card_endpoint)
    card_endpoint.refresh_from_db()
    assert "confirmed_endpoints" not in card_endpoint.data
    # The sheet still validates (an unknown key in it would make the character "broken").
    assert alice_client.get(reverse("cast:detail", args=[card_endpoint.pk])).status_code == 200
    exported = alice_client.get(reverse("cast:export", args=[card_endpoint.pk, "v2.json"]))
    assert CARD_URL in exported.content.decode()  # the profile travels...
    assert "confirmed_endpoints" not in exported.content.decode()  # ...its confirmation not


# --- the character page ----------------------------------------------------------------------


def test_the_page_shows_an_unconfirmed_endpoint_with_a_confirm_button(alice_client, card_endpoint):
    page = alice_client.get(reverse("cast:detail", args=[card_endpoint.pk])).content.decode()
    assert "Used by web sessions with this character unless the session overrides" in page
    assert "not confirmed: this role uses the session's default endpoint" in page
    confirm_url = reverse("cast:confirm_endpoint", args=[card_endpoint.pk])
    assert f'action="{confirm_url}"' in page
    assert f'name="url" value="{CARD_URL}"' in page
    assert "Confirm endpoint" in page


def test_after_confirming_the_page_says_so_and_offers_no_button(alice_client, card_endpoint):
    page = confirm(alice_client, card_endpoint)
    page = alice_client.get(page["Location"]).content.decode()
    assert f"<code>{CARD_URL}</code> (confirmed)" in page
    assert "Confirm endpoint" not in page


def test_only_the_owner_can_confirm_and_only_by_post(alice_client, bob, card_endpoint):
    stranger = Client()
    stranger.force_login(bob)
    assert confirm(stranger, card_endpoint).status_code == 404  # like a missing character
    url = reverse("cast:confirm_endpoint", args=[card_endpoint.pk])
    assert alice_client.get(url, {"url": CARD_URL}).status_code == 405
    card_endpoint.refresh_from_db()
    assert card_endpoint.confirmed_endpoints == []


def test_confirming_needs_a_csrf_token(alice, card_endpoint):
    strict = Client(enforce_csrf_checks=True)
    strict.force_login(alice)
    assert confirm(strict, card_endpoint).status_code == 403
    card_endpoint.refresh_from_db()
    assert card_endpoint.confirmed_endpoints == []


def test_only_an_endpoint_the_profiles_name_can_be_confirmed(alice_client, card_endpoint):
    response = confirm(alice_client, card_endpoint, "http://elsewhere.example/v1")
    assert response.status_code == 400
    card_endpoint.refresh_from_db()
    assert card_endpoint.confirmed_endpoints == []


def test_a_duplicate_keeps_its_owners_confirmations(alice_client, alice, card_endpoint):
    confirm(alice_client, card_endpoint)
    alice_client.post(reverse("cast:duplicate", args=[card_endpoint.pk]))
    copy = Character.objects.filter(owner=alice).exclude(pk=card_endpoint.pk).get()
    assert copy.confirmed_endpoints == [CARD_URL]


def test_the_edit_page_says_what_profiles_do_and_which_endpoint_waits(alice_client, card_endpoint):
    page = alice_client.get(reverse("cast:edit", args=[card_endpoint.pk])).content.decode()
    assert "Used by web sessions with this character unless the session overrides" in page
    assert f"responder calls <code>{CARD_URL}</code>" in page
    assert "not confirmed, so this role uses the session's default endpoint" in page


# --- the new-session form --------------------------------------------------------------------


def test_the_new_session_form_starts_on_the_characters_strategy(alice_client, sara):
    sara.data = {**sara.data, "strategy": "linear"}
    sara.save()
    page = alice_client.get(reverse("home")).content.decode()
    assert '<option value="linear" selected>' in page
    assert '<option value="nested" selected>' not in page
    assert "Prefilled from Sara Wilcox's character sheet (linear)" in page
    # The persona fields are those of the linear pipeline.
    assert 'name="model:pipeline/responder"' in page
    assert 'name="model:orchestrator' not in page


def test_choosing_another_character_swaps_in_its_strategy_and_personas(alice_client, alice):
    single = Character.objects.create(
        owner=alice, name="Plain Pat", slug="plain_pat", data={"name": "Plain Pat"}
    )
    single.data = {**single.data, "strategy": "single"}
    single.save()
    response = alice_client.get(
        reverse("strategy_field"), {"character": single.pk, "hierarchy": "dialogue"}
    )
    page = response.content.decode()
    assert response.status_code == 200
    assert '<option value="single" selected>' in page
    assert "Prefilled from Plain Pat's character sheet (single)" in page
    # The persona fields come along out of band, for the single strategy (no orchestrator).
    assert 'id="profile-fields" class="profiles" hx-swap-oob="true"' in page
    assert 'name="model:orchestrator' not in page


def test_someone_elses_character_gives_no_strategy_away(alice_client, bob):
    data = {"name": "Bob's Own", "strategy": "single"}
    theirs = Character.objects.create(owner=bob, name="Bob's Own", slug="bobs_own", data=data)
    page = alice_client.get(
        reverse("strategy_field"), {"character": theirs.pk, "hierarchy": "dialogue"}
    ).content.decode()
    assert "Bob" not in page
    assert '<option value="nested" selected>' in page
