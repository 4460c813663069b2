"""The debugger in real headless Chromium, against daphne and the scripted LLM."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from personaweb.web.models import ChatSession, NodeRow

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "a-long-test-password-42"
SCREENSHOT_ENV = "PERSONAWEB_SCREENSHOT"
"""Where the streaming test saves its picture; unset, a temporary file (`make screenshot` sets
it to docs/screenshot.png, the README's picture, which an ordinary run must not rewrite)."""


def log_in(page: Page, server, username: str = "alice") -> None:
    page.goto(server.url + "/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Sessions")


def new_session(page: Page, mode: str) -> None:
    page.check(f"input[name=mode][value={mode}]")
    # These tests start from an empty tree: no card greeting (tests/browser/test_cards.py).
    page.select_option("select[name=greeting]", "none")
    page.click("form.stack button.primary")
    expect(page.locator("#steps")).to_be_visible()
    expect(page.locator("#runbar")).to_contain_text("waiting for your first message")


def send(page: Page, text: str) -> None:
    page.fill("#message", text)
    page.click("#send-form button")


def rows(page: Page, persona: str | None = None, kind: str = "proposal"):
    locator = page.locator(f"#steps > li.step.k-{kind}")
    if persona:
        locator = locator.filter(has=page.locator(".who", has_text=re.compile(f"^{persona}$")))
    return locator


def inspector_shows(page: Page, text: str) -> None:
    expect(page.locator("#inspector h2")).to_contain_text(text)
    # htmx wires up swapped-in buttons when the swap settles; wait for that before clicking.
    expect(page.locator("#inspector.htmx-added, #inspector.htmx-settling")).to_have_count(0)


def test_a_message_streams_through_the_hierarchy(
    page, live_server_proc, browser_llm, alice, tmp_path
):
    screenshot = Path(os.environ.get(SCREENSHOT_ENV) or tmp_path / "screenshot.png").resolve()
    log_in(page, live_server_proc)
    new_session(page, "autonomous")
    browser_llm.chunk_delay_s = 0.12  # slow enough to catch the run in the middle
    try:
        send(page, "I am Joe. Who are you?")
        # The user's message and then the personas' steps arrive without a reload.
        expect(rows(page, kind="inbound").first).to_contain_text("I am Joe")
        streaming = page.locator("#steps .glyph.st-streaming")
        expect(streaming.first).to_be_visible()
        expect(page.locator("#personas [data-status=streaming]")).to_have_attribute(
            "data-persona", "orchestrator/responder"
        )
        # Mid-run, while the rewriter streams: inspect the responder's proposal and take the
        # picture for the README.
        rewriter = rows(page, "style_rewriter").filter(has=page.locator(".glyph.st-streaming"))
        expect(rewriter).to_have_count(1)
        rows(page, "responder").first.locator("button.row").click()
        inspector_shows(page, "responder · proposal · reply")
        page.locator("#inspector details.messages summary").click()
        expect(page.locator("#personas [data-status=streaming]")).to_have_attribute(
            "data-persona", "orchestrator/style_rewriter"
        )
        expect(page.locator("#runbar")).to_contain_text("running")
        screenshot.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(screenshot))
        assert screenshot.stat().st_size > 0
        # Streamed text grows in place, in batches.
        first = rewriter.locator(".pv").inner_text()
        expect(rewriter.locator(".pv")).not_to_have_text(first)
    finally:
        browser_llm.chunk_delay_s = 0.04
    # The run ends with the character's styled line in the transcript.
    expect(page.locator("#transcript .from-persona .text")).to_contain_text(
        "[styled] Line 1: you said", timeout=20_000
    )
    expect(page.locator("#runbar")).to_contain_text("done: your turn")
    expect(page.locator("#personas [data-status=idle]")).to_have_count(3)


def test_review_approve_reject_feedback_branch_and_switch(page, live_server_proc, alice):
    log_in(page, live_server_proc)
    new_session(page, "review")
    send(page, "Hello there")
    orchestrator_first = rows(page, "orchestrator").first
    expect(orchestrator_first.locator(".glyph")).to_have_class(re.compile("st-proposed"))
    expect(page.locator("#personas [data-status=proposed]")).to_have_attribute(
        "data-persona", "orchestrator"
    )

    # Approve (with the keyboard): the responder is asked and proposes.
    orchestrator_first.locator("button.row").click()
    inspector_shows(page, "orchestrator · proposal · delegate → responder")
    page.keyboard.press("a")
    expect(rows(page, "responder").first).to_contain_text("Line 1")
    inspector_shows(page, "responder · proposal")  # the inspector followed the run

    # Reject: the responder proposes again.
    expect(page.locator("#inspector button.reject")).to_be_enabled()  # done streaming
    page.keyboard.press("r")
    expect(rows(page, "responder").nth(1)).to_contain_text("Take 2: I will not say that again")
    expect(rows(page, "responder").first.locator(".glyph")).to_have_class(re.compile("st-rejected"))

    # Feedback to the child persona: it re-proposes with the feedback in view.
    inspector_shows(page, "responder · proposal")
    expect(page.locator("#inspector pre.content")).to_contain_text("Take 2")
    expect(page.locator("#inspector button.reject")).to_be_enabled()
    page.locator("#inspector details.act summary", has_text="feedback").click()
    page.fill("#inspector textarea[name=text]", "be colder")
    page.locator("#inspector button", has_text="send feedback").click()
    expect(rows(page, kind="feedback")).to_contain_text("be colder")
    expect(rows(page, "responder").nth(2)).to_contain_text("as you asked (be colder)")

    # Approve through to the end of the turn.
    for _ in range(4):  # responder, orchestrator -> rewriter, rewriter, orchestrator reply
        inspector_shows(page, "· proposal")
        expect(page.locator("#inspector button.approve")).to_be_enabled()
        approved = page.locator("#inspector").get_attribute("data-node")
        page.locator("#inspector button.approve").click()
        # Wait until the node shows as approved: its approve button is then disabled, so the
        # next round's "enabled" waits for the next proposal, not this one.
        glyph = page.locator(f"#n-{approved} .glyph").first
        expect(glyph).to_have_class(re.compile("st-approved"))
        # The inspector fetches its own update: wait until it no longer offers this approval.
        offered = f'#inspector[data-node="{approved}"] button.approve:not([disabled])'
        expect(page.locator(offered)).to_have_count(0)
    transcript = page.locator("#transcript")
    expect(transcript).to_contain_text("[styled] Take 3, as you asked (be colder)")
    # An applied proposal cannot be approved again: the button is disabled...
    rows(page, "orchestrator").first.locator("button.row").click()
    inspector_shows(page, "orchestrator · proposal")
    expect(page.locator("#inspector button.approve")).to_be_disabled()
    # ...and a forced post is refused by the server, with a message.
    node_id = page.locator("#inspector").get_attribute("data-node")
    status = page.evaluate(
        """async (url) => (await fetch(url, {method: 'POST', headers: {'X-CSRFToken':
            JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']}})).status""",
        f"{page.url}n/{node_id}/approve/",
    )
    assert status == 409

    # Branch from the orchestrator's first proposal: a new branch beside the old one.
    page.locator("#inspector button", has_text="branch here").click()
    expect(page.locator("#steps .alts .alt")).to_have_count(1)
    expect(rows(page, "orchestrator").first.locator(".bno")).to_have_text("b2/2")
    expect(transcript).not_to_contain_text("[styled]")

    # Switch back to the first branch: its transcript returns; and to the new one again.
    page.locator("#steps .alts .alt").click()
    expect(transcript).to_contain_text("[styled] Take 3")
    expect(rows(page, "orchestrator").first.locator(".bno")).to_have_text("b1/2")
    page.locator("#steps .alts .alt").first.click()
    expect(transcript).not_to_contain_text("[styled]")
    session = ChatSession.objects.get(owner=alice)
    assert NodeRow.objects.filter(session=session, parent=None).count() == 1


def test_a_restarted_server_resyncs_and_resumes(page, live_server_proc, browser_llm, alice):
    log_in(page, live_server_proc)
    new_session(page, "autonomous")
    browser_llm.chunk_delay_s = 0.5  # a slow stream, to be cut off
    try:
        send(page, "Tell me a long story")
        expect(page.locator("#steps .glyph.st-streaming").first).to_be_visible()
        live_server_proc.kill()  # the process dies mid-stream
    finally:
        browser_llm.chunk_delay_s = 0.04
    live_server_proc.start()
    # The page reconnects by itself; the resync shows the step as interrupted, resumable.
    interrupted = page.locator("#steps li.step .glyph.st-interrupted")
    expect(interrupted).to_have_count(1, timeout=20_000)
    expect(page.locator("#runbar")).to_contain_text("was interrupted: resume it")
    interrupted.locator("xpath=ancestor::li[1]").locator("button.row").click()
    resume = page.locator("#inspector button", has_text="resume")
    expect(resume).to_be_enabled()
    resume.click()
    expect(page.locator("#transcript .from-persona")).to_contain_text("[styled] Line 1")
