"""`manage.py compare_strategies` on the scripted LLM server: the page's code, in a terminal."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from personaweb.compare import metrics, results
from personaweb.compare.models import Comparison
from personaweb.compare.templatetags.compare_figures import estimate
from personaweb.web import runs

pytestmark = pytest.mark.django_db(transaction=True)

SCRIPT = "Who are you?\n\nWhat do you want?\n"


@pytest.fixture(autouse=True)
def fresh_runs():
    # The command runs its own event loop (asyncio.run); the registry must start empty.
    runs.reset_for_tests()
    yield
    runs.reset_for_tests()


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command("compare_strategies", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_it_plays_measures_and_exports_the_experiment(tmp_path: Path, alice, compare_llm):
    script = tmp_path / "script.txt"
    script.write_text(SCRIPT, encoding="utf-8")
    paths = {name: tmp_path / f"out.{name}" for name in ("json", "csv", "figures")}
    out, err = run(
        "--character",
        "Jon Johns",
        "--strategies",
        "single,nested,linear",
        "--samples",
        "2",
        "--script",
        str(script),
        "--user",
        "alice",
        "--json",
        str(paths["json"]),
        "--csv",
        str(paths["csv"]),
        "--figures-csv",
        str(paths["figures"]),
    )
    # It is an ordinary comparison of alice's, on her Compare page, with her copy of Jon.
    comparison = Comparison.objects.get()
    assert comparison.owner == alice and comparison.samples == 2
    assert comparison.script == ["Who are you?", "What do you want?"]
    assert comparison.character.owner == alice and comparison.character.slug == "jon_johns"
    assert [c.strategy for c in comparison.contenders.order_by("position")] == [
        "single",
        "nested",
        "linear",
    ]
    # The progress bar counted every reply: 2 lines x 2 samples x 3 contenders.
    assert "12/12 replies" in err.splitlines()[-1]
    # The table shows the figures the page computes, with the page's own code.
    columns = metrics.columns(comparison)
    found = results.build(comparison, columns)
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if "style score" in line)
    rows = lines[header + 2 : header + 5]
    for row, result in zip(rows, found.contenders, strict=True):
        assert row.startswith(f"{result.letter} {result.name}")
        assert estimate(result.score) in row and estimate(result.calls, 1) in row
    assert found.sentences and all(sentence in out for sentence in found.sentences)
    assert "over 2 lines x 2 samples" in out

    data = json.loads(paths["json"].read_text(encoding="utf-8"))
    assert data["figures"]["sentences"] == found.sentences
    assert len(data["replies"]) == 12
    rows = list(csv.DictReader(paths["csv"].open(encoding="utf-8")))
    assert len(rows) == 12 and {r["sample"] for r in rows} == {"1", "2"}
    figures = list(csv.DictReader(paths["figures"].open(encoding="utf-8")))
    assert {r["figure"] for r in figures} >= {"style_score", "llm_calls_per_reply"}


def test_a_contender_that_fails_makes_the_command_fail_after_the_table(alice, compare_llm):
    # The scripted server answers 404 for this model (tests/compare/conftest.py).
    with pytest.raises(CommandError, match=r"A single failed: .*404"):
        run(
            "--character",
            "Sara Wilcox",
            "--model",
            "no-such-model",
            "--user",
            "alice",
            "--samples",
            "1",
        )
    assert Comparison.objects.count() == 1  # what was played is kept


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--strategies", "single,fancy"], "unknown strategy 'fancy'"),
        (["--strategies", "single"], "compare 2 to 4 strategies"),
        (["--samples", "0"], "--samples takes 1 to 20"),
        (["--script", "/no/such/file"], "cannot read the script"),
    ],
)
def test_bad_arguments_are_clear_errors(args, message, compare_llm):
    with pytest.raises(CommandError, match=message):
        run("--character", "Sara Wilcox", *args)
    assert not Comparison.objects.exists()


def test_an_unknown_character_is_named_with_the_known_ones(compare_llm):
    with pytest.raises(CommandError, match=r"no character called 'Nobody'.*Jon Johns"):
        run("--character", "Nobody")


def test_retries_continue_a_contender_that_stopped_short(alice, compare_llm):
    from personaweb.llm.scripted_server import ServerError
    from personaweb.web.models import NodeRow

    # The first request of the run fails (not retried by the client): one contender stops.
    compare_llm.enqueue(ServerError(404, headers={"x-should-retry": "false"}))
    out, _ = run(
        "--character",
        "Sara Wilcox",
        "--strategies",
        "single,linear",
        "--samples",
        "1",
        "--user",
        "alice",
        "--retries",
        "1",
    )
    comparison = Comparison.objects.get()
    assert [c.status for c in metrics.columns(comparison)] == ["done", "done"]
    assert "[failed]" not in out
    # The failure is kept in the tree, its retry beside it.
    assert NodeRow.objects.filter(status="failed").count() == 1
