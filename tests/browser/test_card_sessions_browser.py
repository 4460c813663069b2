"""A card's greeting in real Chromium: the new-session form offers the chosen character's
greetings (and follows a change of character), the session opens with the greeting, and the
reply to the person's first message follows it."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_debugger import log_in, send

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_session_opens_with_the_greeting_picked_on_the_form(
    page: Page, live_server_proc, browser_llm, alice
):
    log_in(page, live_server_proc)
    greeting = page.locator("select[name=greeting]")
    # The bundled cast, alphabetically: Bess Tolliver first, with her card's greeting.
    expect(greeting.locator("option[selected]")).to_contain_text("greeting: Ahoy there!")
    page.select_option("select[name=character]", label="Sara Wilcox")
    expect(greeting.locator("option").first).to_contain_text("greeting: What news? Speak")
    page.fill("input[name=user_name]", "Joe")
    page.check("input[name=mode][value=autonomous]")
    page.click("form.stack button.primary")

    transcript = page.locator("#transcript")
    expect(transcript.locator(".line").first).to_contain_text("What news? Speak, and be brief")
    expect(page.locator("#runbar")).to_contain_text("done: your turn")
    expect(page.locator("#steps > li.step.k-greeting")).to_have_count(1)

    send(page, "I bring word from the coast.")
    expect(transcript.locator(".line")).to_have_count(3, timeout=30_000)
    expect(transcript.locator(".line").nth(1)).to_contain_text("I bring word from the coast.")
    expect(transcript.locator(".line").nth(2)).to_contain_text("[styled]")
    # The responder's prompt had the greeting as its own first line.
    responder = [
        body
        for body in browser_llm.requests
        if "Stay in character" in body["messages"][0]["content"]
    ]
    assert responder[-1]["messages"][1] == {
        "role": "assistant",
        "content": "What news? Speak, and be brief: the hour is precious, and the night comes "
        "on apace.",
    }
    assert "You are talking with Joe." in responder[-1]["messages"][0]["content"]


def test_the_form_follows_the_chosen_characters_strategy(page: Page, live_server_proc, alice):
    log_in(page, live_server_proc)
    strategy = page.locator("select[name=strategy]")
    expect(strategy).to_have_value("nested")  # Bess Tolliver's sheet
    page.select_option("select[name=character]", label="Mack Dorsey")
    expect(strategy).to_have_value("single")
    expect(page.locator(".strategy-source")).to_contain_text(
        "Prefilled from Mack Dorsey's character sheet (single)"
    )
    # The persona fields followed: one prompt, so no orchestrator to give a model.
    expect(page.locator("#profile-fields input[name='model:character']")).to_have_count(1)
    expect(page.locator("#profile-fields input[name^='model:orchestrator']")).to_have_count(0)
