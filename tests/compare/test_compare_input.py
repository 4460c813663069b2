"""Bad input to the comparison pages is a 4xx with nothing created, never a server error."""

from __future__ import annotations

import re
from html import unescape

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from personaweb.compare import running
from personaweb.compare.models import Comparison, Vote
from personaweb.compare.setup import ContenderSpec, create_comparison
from personaweb.web.models import ChatSession

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_runs")]

SCRIPT = ["Hello, who are you?", "You are a fool."]

_INPUT = re.compile(r"<input\b[^>]*>")
_ATTR = re.compile(r'\b(name|value|type)="([^"]*)"')
_SELECT = re.compile(r'<select name="(?P<name>[^"]+)".*?</select>', re.S)
_OPTION = re.compile(r'<option value="([^"]*)"( selected)?>')
_TEXTAREA = re.compile(r'<textarea name="(?P<name>[^"]+)"[^>]*>(?P<text>.*?)</textarea>', re.S)


def fields_of(html: str) -> dict[str, str]:
    """What a browser posts for the fields in `html` as the page set them (no checkbox is
    ticked on these pages, and unticked ones are not posted)."""
    found = {}
    for tag in _INPUT.findall(html):
        attrs = dict(_ATTR.findall(tag))
        if "name" in attrs and attrs.get("type") != "checkbox":
            found[attrs["name"]] = unescape(attrs.get("value", ""))
    for m in _SELECT.finditer(html):
        options = _OPTION.findall(m.group(0))
        chosen = [value for value, selected in options if selected] or [options[0][0]]
        found[m["name"]] = unescape(chosen[0])
    for m in _TEXTAREA.finditer(html):
        found[m["name"]] = unescape(m["text"].removeprefix("\n"))
    return found


def posted_page(page: str, added_rows: int) -> dict[str, str]:
    """The new-comparison form as compare.js posts it after `+ add a contender` was clicked
    `added_rows` times and nothing else was touched."""
    form, _, rest = page.partition('<template id="contender-template">')
    row, _, _ = rest.partition("</template>")
    data = fields_of(form)
    data.pop("csrfmiddlewaretoken", None)
    total = int(data["contenders-TOTAL_FORMS"])
    for i in range(total, total + added_rows):
        for name, value in fields_of(row).items():
            data[name.replace("__prefix__", str(i))] = value
    data["contenders-TOTAL_FORMS"] = str(total + added_rows)
    return data


async def test_it_counts_an_added_row_left_at_its_defaults(async_client, alice, sara, compare_llm):
    # A person who adds a row sees a contender (nested, default model, 0.7) and expects one:
    # Django's formset used to let that unchanged row through empty (KeyError: 'strategy').
    await sync_to_async(async_client.force_login)(alice)
    page = (await async_client.get(reverse("compare:new"))).content.decode()
    data = posted_page(page, added_rows=1)
    response = await async_client.post(reverse("compare:new"), data)
    assert response.status_code == 302
    comparison = await Comparison.objects.aget()
    await running.wait(comparison)
    specs = [
        (c.strategy, c.model, c.temperature)
        async for c in comparison.contenders.order_by("position")
    ]
    assert specs == [("single", "", 0.7), ("nested", "", 0.7), ("nested", "", 0.7)]


def test_it_refuses_an_added_row_with_a_missing_field_and_creates_nothing(client, alice, sara):
    client.force_login(alice)
    data = posted_page(client.get(reverse("compare:new")).content.decode(), added_rows=1)
    del data["contenders-2-strategy"]
    response = client.post(reverse("compare:new"), data)
    assert response.status_code == 400
    assert "Strategy: This field is required." in response.content.decode()
    assert not Comparison.objects.exists() and not ChatSession.objects.exists()


@pytest.mark.parametrize("raw", ["²", "\u0661", "abc", "", " 1", "-1", "0", str(10**30)])
def test_a_from_that_cannot_be_an_id_is_a_404(client, alice, sara, raw):
    client.force_login(alice)
    response = client.get(reverse("compare:new"), {"from": raw})
    assert response.status_code == 404


@pytest.mark.parametrize("raw", ["²", "\u0661", "1.0", str(10**30)])
def test_a_character_that_cannot_be_an_id_is_a_form_error(client, alice, sara, raw):
    client.force_login(alice)
    data = posted_page(client.get(reverse("compare:new")).content.decode(), added_rows=0)
    data["character"] = raw
    response = client.post(reverse("compare:new"), data)
    assert response.status_code == 400
    assert "Select a valid choice" in response.content.decode()
    assert not Comparison.objects.exists()


@pytest.mark.parametrize(
    ("line", "contender"),
    [("²", "ok"), ("\u0661", "ok"), (" 0", "ok"), ("0", "²"), ("0", str(10**30)), ("0", "\u0661")],
)
def test_a_vote_with_an_id_that_cannot_be_one_is_refused(client, alice, sara, line, contender):
    comparison = create_comparison(
        alice, sara, SCRIPT, [ContenderSpec("single"), ContenderSpec("nested")], blind=True
    )
    mine = comparison.contenders.first()
    assert mine is not None
    client.force_login(alice)
    posted = {"line": line, "contender": str(mine.pk) if contender == "ok" else contender}
    response = client.post(reverse("compare:vote", args=[comparison.pk]), posted)
    assert response.status_code == 400
    assert not Vote.objects.exists()
