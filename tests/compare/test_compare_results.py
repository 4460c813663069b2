"""Results and charts from synthetic columns whose answer is known (no database, no model)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from personaweb.characters.style import StyleScore
from personaweb.compare import charts, results
from personaweb.compare.metrics import Column, Turn
from personaweb.compare.models import Comparison, Contender

SVG = "{http://www.w3.org/2000/svg}"


def contender(pk: int, strategy: str, label: str = "") -> Contender:
    return Contender(pk=pk, position=pk - 1, strategy=strategy, label=label or f"{strategy} · m")


def column(who: Contender, scores: list[list[float]], calls: int = 1) -> Column:
    """A finished column: scores[i] are line i's samples' style scores."""
    turns = []
    for index, line in enumerate(scores):
        replies = [
            Turn(
                index,
                f"line {index}",
                state="done",
                reply=f"reply {index}.{k}",
                sample=k + 1,
                expected=len(line),
                calls=calls,
                prompt_tokens=10 * calls,
                latency_s=0.5 * calls,
                style=StyleScore(p, "x", 1 - p, ((("x", p)),), 0.0),
            )
            for k, p in enumerate(line)
        ]
        first = replies[0] if replies else Turn(index, f"line {index}", expected=0)
        first.samples = replies[1:]
        turns.append(first)
    return Column(who, turns, "done")


def comparison(lines: int, samples: int) -> Comparison:
    return Comparison(script=[f"line {i}" for i in range(lines)], samples=samples)


def test_nested_against_single_in_one_plain_sentence() -> None:
    single, nested = contender(1, "single"), contender(2, "nested")
    # Nested is single plus 0.2 on every sample of every line: the difference is exactly 0.2.
    base = [[0.3, 0.5], [0.1, 0.2], [0.6, 0.4], [0.2, 0.3], [0.5, 0.5]]
    lifted = [[v + 0.2 for v in line] for line in base]
    found = results.build(comparison(5, 2), [column(nested, lifted), column(single, base)], [])
    assert found.baseline is not None and found.baseline.contender is single
    [difference] = found.differences
    assert difference.score.value == pytest.approx(0.2)
    assert difference.clear
    assert difference.sentence.startswith("nested scores 0.20 higher than single, 95% interval ")
    assert difference.sentence.endswith(", over 5 lines x 2 samples.")


def test_an_interval_across_zero_is_said_to_be_no_clear_difference() -> None:
    single, linear = contender(1, "single"), contender(2, "linear")
    a = [[0.5], [0.2], [0.6], [0.1]]
    b = [[0.45], [0.3], [0.5], [0.2]]  # a little up on two lines, down on two: 0.0125 on the whole
    found = results.build(comparison(4, 1), [column(single, a), column(linear, b)], [])
    sentence = found.differences[0].sentence
    assert sentence.startswith("linear scores 0.01 higher than single, 95% interval 0.")
    assert " lower to 0." in sentence
    assert sentence.endswith(" higher, over 4 lines x 1 sample: not a clear difference.")
    assert not found.differences[0].clear


def test_one_reply_each_gives_no_interval_and_says_so() -> None:
    single, nested = contender(1, "single"), contender(2, "nested")
    found = results.build(comparison(1, 1), [column(single, [[0.1]]), column(nested, [[0.9]])], [])
    assert found.differences[0].sentence == (
        "nested scores 0.80 higher than single on the one reply each has so far "
        "(one reply gives no interval)."
    )


def test_one_reply_against_many_says_there_are_too_few_for_an_interval() -> None:
    single, nested = contender(1, "single"), contender(2, "nested")
    found = results.build(
        comparison(2, 2),
        [column(single, [[0.5, 0.3], [0.4, 0.2]]), column(nested, [[0.1], []])],
        [],
    )
    assert found.differences[0].sentence == (
        "nested scores 0.30 lower than single on the replies both have so far (nested has only "
        "one: too few for an interval)."
    )


def test_votes_count_toward_the_same_sentence() -> None:
    single, nested = contender(1, "single"), contender(2, "nested")
    columns = [column(single, [[0.2]] * 4), column(nested, [[0.6]] * 4)]
    votes = [(0, 2), (1, 2), (2, 2), (3, 1)]  # nested picked on three of four lines
    found = results.build(comparison(4, 1), columns, votes)
    sentence = found.differences[0].sentence
    assert sentence.endswith(
        "In blind votes nested was picked over single in 3 of 4 votes (75%, 95% interval 30% "
        "to 95%)."
    )
    assert found.votes == 4
    assert found.ranking == []  # two contenders: the head-to-head share is the whole story


def test_three_contenders_get_a_bradley_terry_ranking() -> None:
    single, nested, linear = contender(1, "single"), contender(2, "nested"), contender(3, "linear")
    columns = [column(c, [[0.5]] * 6) for c in (single, nested, linear)]
    votes = [(0, 3), (1, 3), (2, 3), (3, 2), (4, 2), (5, 1)]
    found = results.build(comparison(6, 1), columns, votes)
    assert [r.name for r in found.ranking] == ["linear", "nested", "single"]
    assert sum(r.strength.value for r in found.contenders) == pytest.approx(1.0)
    assert [round(r.vote_share.value, 3) for r in found.contenders] == [0.167, 0.333, 0.5]


def test_without_a_single_contender_the_first_column_is_the_baseline() -> None:
    a, b = contender(1, "nested", "nested · big"), contender(2, "nested", "nested · small")
    found = results.build(
        comparison(2, 1), [column(a, [[0.5], [0.4]]), column(b, [[0.3], [0.2]])], []
    )
    assert found.baseline.contender is a
    # Two nested contenders: the sentence names them by label.
    assert found.differences[0].sentence.startswith(
        "nested · small scores 0.20 lower than nested · big"
    )


def test_costs_are_per_reply_with_intervals() -> None:
    single, nested = contender(1, "single"), contender(2, "nested")
    found = results.build(
        comparison(3, 2),
        [column(single, [[0.5, 0.5]] * 3, calls=1), column(nested, [[0.5, 0.5]] * 3, calls=5)],
        [],
    )
    one, five = found.contenders
    assert (one.calls.value, five.calls.value) == (1.0, 5.0)
    assert (five.tokens.value, five.latency_s.value) == (50.0, 2.5)
    assert five.calls.low == five.calls.high == 5.0  # every reply cost the same
    assert five.total_calls == 30


# --- charts -------------------------------------------------------------------------------------

HOSTILE = '<script>alert("x")</script> & </svg>'


@pytest.fixture
def found() -> results.Results:
    cast = [contender(1, "single", HOSTILE), contender(2, "nested"), contender(3, "linear")]
    columns = [column(c, [[0.2 * (i + 1), 0.1 * (i + 1)]] * 3) for i, c in enumerate(cast)]
    return results.build(comparison(3, 2), columns, [])


def bars(svg: str) -> list[ET.Element]:
    root = ET.fromstring(svg)  # a well-formed, standalone SVG document
    return [r for r in root.iter(f"{SVG}rect") if "bar" in r.get("class", "").split()]


def test_the_score_chart_has_one_bar_per_contender_and_escapes_labels(found) -> None:
    svg = charts.score_chart(found)
    assert "<script" not in svg and "&lt;script&gt;" in svg
    drawn = bars(svg)
    assert [b.get("class") for b in drawn] == ["bar c0", "bar c1", "bar c2"]
    # Each bar says what it stands for, interval included.
    assert "95% interval" in drawn[0].find(f"{SVG}title").text


def test_the_line_chart_has_one_bar_per_contender_per_line(found) -> None:
    svg = charts.lines_chart(found, ["<b>Hi</b>", "two", "three"])
    assert len(bars(svg)) == 3 * 3
    assert "<b>" not in svg and "&lt;b&gt;Hi&lt;/b&gt;" in svg


def test_the_cost_chart_has_one_bar_per_contender_per_figure(found) -> None:
    assert len(bars(charts.cost_chart(found))) == 3 * 3


def test_charts_use_no_style_attributes(found) -> None:
    # The app's CSP forbids inline styles: colours are presentation attributes.
    for name in charts.CHARTS:
        root = ET.fromstring(charts.chart(name, found, ["a", "b", "c"]))
        assert all("style" not in element.attrib for element in root.iter())


def test_a_contender_with_no_replies_gets_no_bar_but_a_note() -> None:
    empty = Column(contender(2, "nested"), [Turn(0, "line 0", state="failed")], "failed")
    found = results.build(comparison(1, 1), [column(contender(1, "single"), [[0.4]]), empty], [])
    svg = charts.score_chart(found)
    assert len(bars(svg)) == 1 and "no replies yet" in svg
    assert found.differences[0].sentence == "nested and single have no line that both answered yet."
