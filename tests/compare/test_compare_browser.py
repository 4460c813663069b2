"""A blind two-column comparison in real headless Chromium: it streams in (two samples per
line), then votes reveal the labels, the figures and the charts."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect

from personaweb.compare.models import Comparison, Vote

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
VIEWPORT = (1440, 1000)
CHECK_CONSOLE_ERRORS = True  # a CSP violation or a failed swap shows in the console

PASSWORD = "a-long-test-password-42"


def log_in(page: Page, server) -> None:
    page.goto(server.url + "/accounts/login/")
    page.fill("#id_username", "alice")
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    expect(page.locator("h1")).to_have_text("Sessions")


def test_a_blind_two_column_comparison_streams_in_and_takes_votes(
    page, compare_server, browser_compare_llm, alice, sara
):
    log_in(page, compare_server)
    page.click("header.topbar a:text('Compare')")
    page.click("a:text('New comparison')")
    page.select_option("#id_character", label="Sara Wilcox")
    page.fill("#id_script", "I am Joe. Who are you?\nI think you are a fool.")
    # The form starts with two contenders and takes up to four; a third can be removed again.
    rows = page.locator("#contender-rows [data-contender-row]")
    expect(rows).to_have_count(2)
    page.click("#add-contender")
    expect(rows).to_have_count(3)
    rows.nth(2).locator(".remove-contender").click()
    expect(rows).to_have_count(2)
    page.fill("#id_samples", "2")
    page.select_option("#id_contenders-0-strategy", "single")
    page.select_option("#id_contenders-1-strategy", "nested")
    page.check("#id_blind")
    browser_compare_llm.chunk_delay_s = 0.1  # slow enough to see text arrive mid-run
    try:
        page.click("button:text('Run the comparison')")
        expect(page.locator(".cmp-colhead")).to_have_count(2)
        # Blind: letters only, no labels.
        expect(page.locator(".cmp-colhead .letter")).to_have_text(["A", "B"])
        expect(page.locator(".cmp-colhead .cfg")).to_have_text(["hidden", "hidden"])
        # Streamed text shows up in a column's live cell while a reply is being written.
        live = page.locator(".cmp-live")
        expect(live.filter(has_text=re.compile(r"\S")).first).to_be_visible()
        page.screenshot(path=str(compare_server.log.parent / "streaming.png"))
    finally:
        browser_compare_llm.chunk_delay_s = 0.05
    # Both columns finish without a reload: four replies, two per column.
    expect(page.locator(".cmp-cell[data-state=done]")).to_have_count(4, timeout=30_000)
    expect(page.locator(".cmp-colhead .cmp-badge")).to_have_text(["done", "done"])
    expect(page.locator(".cmp-cell .reply").filter(has_text="Single says")).to_have_count(2)
    expect(page.locator(".cmp-cell .reply").filter(has_text="Hark, Responder hears")).to_have_count(
        2
    )
    comparison = Comparison.objects.get()
    debugger_links = page.locator(".cmp-colhead a.debugger-link")
    expect(debugger_links).to_have_count(2)
    sessions = {c.session_id for c in comparison.contenders.all()}
    hrefs = {debugger_links.nth(i).get_attribute("href") for i in range(2)}
    assert hrefs == {f"/s/{pk}/" for pk in sessions}

    # Vote: line 1 for A, line 2 for B; the second vote reveals labels and tallies.
    expect(page.locator(".cmp-foot .hint").first).to_contain_text("hidden until you have voted")
    page.locator("#board .cmp-cell").nth(0).locator("button:text('best reply')").click()
    expect(page.locator(".cmp-cell[data-voted]")).to_have_count(1)
    expect(page.locator(".cmp-colhead .cfg").first).to_have_text("hidden")
    page.locator("#board .cmp-cell").nth(3).locator("button:text('best reply')").click()
    expect(page.locator(".cmp-cell[data-voted]")).to_have_count(2)
    expect(page.locator(".cmp-colhead .cfg").first).to_contain_text("t=0.7")
    expect(page.locator(".cmp-foot .votes")).to_have_text(["1", "1"])
    # Style numbers are shown now, per reply and per column, with intervals.
    expect(page.locator(".cmp-cell .metrics").first).to_contain_text("style")
    expect(page.locator(".cmp-foot").first).to_contain_text("consistency")
    expect(page.locator(".cmp-foot").first).to_contain_text(" to ")
    # Each line was answered twice per contender; the second sample folds under the first.
    expect(page.locator(".cmp-samples summary")).to_have_count(4)
    expect(page.locator(".cmp-samples summary").first).to_contain_text("2 of 2 samples")
    # The results: a sentence against the single-prompt baseline, and three SVG charts with
    # one bar per contender in the score chart (no script needed to see them).
    expect(page.locator(".cmp-sentences li")).to_have_count(1)
    expect(page.locator(".cmp-sentences li")).to_contain_text("over 2 lines x 2 samples")
    expect(page.locator("svg.cmp-chart")).to_have_count(3)
    expect(page.locator("#chart-score svg rect.bar")).to_have_count(2)
    page.locator("#chart-score").screenshot(path=str(compare_server.log.parent / "chart.png"))
    # The vote changes instead of doubling, and the sentence counts it.
    page.locator("#board .cmp-cell").nth(1).locator("button:text('best reply')").click()
    expect(page.locator(".cmp-foot .votes")).to_have_text(["0", "2"])
    expect(page.locator(".cmp-sentences li")).to_contain_text("In blind votes")
    deadline = time.monotonic() + 5
    while Vote.objects.count() != 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    assert sorted(Vote.objects.values_list("line_index", flat=True)) == [0, 1]
    page.screenshot(path=str(compare_server.log.parent / "finished.png"), full_page=True)
