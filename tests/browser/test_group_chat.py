"""A group chat in real headless Chromium: create it, send a message, watch heat and decisions
arrive live (daphne + the scripted LLM playing every character)."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.browser.test_debugger import log_in
from tests.scripted_replies import group_responder

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(scope="module")
def scripted_dialogue():
    # This module's daphne talks to an LLM that plays a whole group chat.
    return group_responder


def test_a_group_chat_shows_heat_and_silent_decisions(page, live_server_proc, alice, make_cast):
    ann, bob, cara = make_cast(alice)
    log_in(page, live_server_proc)
    page.click("text=New group chat")
    expect(page.locator("h1")).to_have_text("New group chat")
    for character in (ann, bob, cara):
        page.check(f"#member-{character.pk}")
    page.select_option("select[name=strategy]", "single")
    page.click("form.stack button.primary")

    expect(page.locator("#runbar")).to_contain_text("waiting for your first message")
    heat = page.locator("#heat")
    expect(heat.locator("tr[data-character]")).to_have_count(3)
    expect(heat.locator(".heat-value")).to_have_count(0)  # nobody has heard anything yet

    page.fill("#message", "Ann, how was the hunt today?")
    page.click("#send-form button")

    # Without a reload: every character's heat, and decisions in the step tree.
    expect(heat.locator(".heat-value")).to_have_count(3)
    expect(heat.locator("tr[data-character=bob] .heat-value")).to_have_text(
        re.compile(r"^0\.\d\d$")
    )
    silent = page.locator("#steps li.k-decision", has_text="stays silent")
    expect(silent.first).to_be_visible()
    expect(silent.first.locator(".verdict")).to_have_text("silent")
    expect(silent.first).to_contain_text(re.compile(r"heat 0\.\d\d / 0\.60"))
    # Ann's line under her name; the turn ends with everyone else quiet.
    expect(page.locator("#transcript .line[data-speaker='director/ann'] .speaker")).to_have_text(
        "Ann Archer"
    )
    expect(page.locator("#transcript")).to_contain_text("(nobody else speaks)")
    expect(heat.locator("tr[data-character=ann]")).to_contain_text("spoke")
    expect(page.locator("#policies tr[data-policy=heuristic] .calls")).to_contain_text("0")

    # The inspector shows a decision's numbers.
    silent.first.locator("button.row").click()
    expect(page.locator("#inspector dl.decision")).to_contain_text("threshold")
    expect(page.locator("#inspector dl.decision")).to_contain_text("fatigue")
