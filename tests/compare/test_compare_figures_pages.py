"""The figures on the page and in the exports: sentences, intervals, charts, blind mode, samples."""

from __future__ import annotations

import csv
import io
import json
import xml.etree.ElementTree as ET

import pytest
from asgiref.sync import sync_to_async
from django.urls import reverse

from personaweb.compare import running
from personaweb.compare.models import Comparison, Vote
from personaweb.compare.setup import ContenderSpec, create_comparison

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("clean_runs")]

SCRIPT = ["Hello, who are you?", "You are a fool."]
SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture
def played(alice, sara, compare_llm):
    """single against nested, two samples per line, played to the end."""

    async def make(*, blind: bool = False, specs=None) -> Comparison:
        specs = specs or [ContenderSpec("single"), ContenderSpec("nested")]
        comparison = await sync_to_async(create_comparison)(
            alice, sara, SCRIPT, specs, blind=blind, samples=2
        )
        await running.start(comparison)
        await running.wait(comparison)
        return comparison

    return make


async def page_of(client, user, comparison) -> str:
    await sync_to_async(client.force_login)(user)
    return (await client.get(comparison.get_absolute_url())).content.decode()


async def test_a_finished_comparison_says_what_it_found_with_intervals_and_charts(
    async_client, alice, played
):
    comparison = await played()
    page = await page_of(async_client, alice, comparison)
    # The plain sentence, against the single-prompt baseline, over lines x samples.
    assert "nested scores " in page and " than single" in page
    assert "over 2 lines x 2 samples" in page
    # Figures with intervals in the table and the column feet.
    assert page.count('class="cmp-chart"') == 3
    table = page.split('cmp-figures"')[1].split("</table>")[0]
    assert table.count(" to ") >= 2 * 2  # "0.62 (0.51 to 0.73)": score and distance, at least
    foot = page.split('class="cmp-foot"')[1].split("</footer>")[0]
    assert "style score" in foot and " to " in foot
    for name in ("score", "lines", "cost"):
        assert reverse("compare:chart", args=[comparison.pk, name]) in page
    # Every line shows how many of its samples answered.
    assert page.count("2 of 2 samples") == 4


async def test_blind_figures_and_charts_wait_for_the_labels(async_client, alice, played):
    comparison = await played(blind=True)
    page = await page_of(async_client, alice, comparison)
    assert "cmp-chart" not in page.replace("cmp-charts", "") and "nested scores" not in page
    chart = reverse("compare:chart", args=[comparison.pk, "score"])
    assert (await async_client.get(chart)).status_code == 403
    # Voting on every line shows the labels, and the votes join the sentence.
    a, b = [c async for c in comparison.contenders.order_by("position")]
    nested = a if a.strategy == "nested" else b
    for line in range(len(SCRIPT)):
        await async_client.post(
            reverse("compare:vote", args=[comparison.pk]), {"line": line, "contender": nested.pk}
        )
    page = (await async_client.get(comparison.get_absolute_url())).content.decode()
    assert page.count('class="cmp-chart"') == 3
    assert "In blind votes nested was picked over single in 2 of 2 votes (100%" in page
    assert (await async_client.get(chart)).status_code == 200


async def test_a_chart_downloads_as_a_standalone_svg(async_client, alice, played):
    comparison = await played()
    await sync_to_async(async_client.force_login)(alice)
    response = await async_client.get(reverse("compare:chart", args=[comparison.pk, "lines"]))
    assert response["Content-Type"] == "image/svg+xml; charset=utf-8"
    assert response["Content-Disposition"] == (
        f'attachment; filename="comparison-{comparison.pk}-lines.svg"'
    )
    root = ET.fromstring(response.content)
    bars = [r for r in root.iter(f"{SVG}rect") if "bar" in r.get("class", "")]
    assert len(bars) == 2 * len(SCRIPT)  # one per contender per line
    missing = reverse("compare:chart", args=[comparison.pk, "nope"])
    assert (await async_client.get(missing)).status_code == 404


async def test_exports_hold_every_sample_and_the_figures(async_client, alice, played):
    comparison = await played()
    await sync_to_async(async_client.force_login)(alice)
    data = json.loads(
        (await async_client.get(reverse("compare:export_json", args=[comparison.pk]))).content
    )
    assert data["samples"] == 2 and len(data["replies"]) == 2 * 2 * 2
    figures = data["figures"]
    assert figures["samples_per_line"] == 2 and figures["baseline"] is not None
    assert figures["sentences"] and figures["sentences"][0].startswith("nested scores ")
    for contender in figures["contenders"]:
        score = contender["style_score"]
        assert score["low"] <= score["value"] <= score["high"]
        assert score["lines"] == 2 and score["samples"] == 4
        assert len(contender["style_score_per_line"]) == 2

    response = await async_client.get(reverse("compare:export_csv", args=[comparison.pk]))
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    assert len(rows) == 8 and {r["sample"] for r in rows} == {"1", "2"}
    assert all(r["state"] == "done" and r["style_probability"] for r in rows)

    response = await async_client.get(reverse("compare:export_figures_csv", args=[comparison.pk]))
    assert response["Content-Disposition"].endswith(f'comparison-{comparison.pk}-figures.csv"')
    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    named = {(r["strategy"], r["figure"]) for r in rows}
    assert {("single", "style_score"), ("nested", "llm_calls_per_reply")} <= named
    assert any(r["figure"].startswith("style_score_minus_") for r in rows)
    for row in rows:
        if row["low"]:
            assert float(row["low"]) <= float(row["value"]) <= float(row["high"])


async def test_three_blind_contenders_are_ranked_by_their_votes(async_client, alice, played):
    specs = [ContenderSpec("single"), ContenderSpec("nested"), ContenderSpec("linear")]
    comparison = await played(blind=True, specs=specs)
    await Comparison.objects.filter(pk=comparison.pk).aupdate(revealed=True)
    linear = await comparison.contenders.aget(strategy="linear")
    for line in range(len(SCRIPT)):
        await Vote.objects.acreate(
            comparison=comparison, line_index=line, contender=linear, voter=alice
        )
    page = await page_of(async_client, alice, comparison)
    ranking = page.split('class="cmp-ranking"')[1].split("</p>")[0]
    assert ranking.index("linear") < ranking.index("nested") and "single" in ranking


def test_the_form_defaults_to_one_sample_on_the_embedded_model(client, alice, sara, monkeypatch):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    client.force_login(alice)
    page = client.get(reverse("compare:new")).content.decode()
    assert 'name="samples" value="1"' in page
    monkeypatch.setenv("OPENAI_BASE_URL", "http://127.0.0.1:9/v1")
    page = client.get(reverse("compare:new")).content.decode()
    assert 'name="samples" value="5"' in page
